// libFuzzer target: every model-file loader (MNIST vit/pool, text classifiers, translators).
#include "fuzz_common.hpp"
#include "fuzz_file.hpp"
#include "model_loaders.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = attnviz::fuzz::to_temp_file(data, size, ".safetensors");
  return attnviz::fuzz::run(data, size, [&](const std::string&) {
    try {
      attnviz::fuzz::load_mnist(path);
    } catch (const attnviz::InputError&) {
    }
    try {
      attnviz::fuzz::load_textcls(path);
    } catch (const attnviz::InputError&) {
    }
    attnviz::fuzz::load_translator(path);
  });
}
