// libFuzzer target: .safetensors parsing, attnviz records (multi-sample, image, gradients, tokens)
// and other tools' safetensors mapped like npy.
#include "fuzz_common.hpp"

#include <attnviz/record/import.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return attnviz::fuzz::run(data, size, [](const std::string& b) {
    attnviz::StFile f = attnviz::parse_safetensors(b, "fuzz.safetensors");
    try {
      attnviz::fuzz::exercise(attnviz::records_from_safetensors(f, "fuzz.safetensors"));
    } catch (const attnviz::InputError&) {
    }
    attnviz::fuzz::exercise(attnviz::import_bytes(b, "fuzz.safetensors"));
  });
}
