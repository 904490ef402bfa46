// libFuzzer target: .npy parsing and its import into a record.
#include "fuzz_common.hpp"

#include <attnviz/record/import.hpp>
#include <attnviz/io/npy.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return attnviz::fuzz::run(data, size, [](const std::string& b) {
    (void)attnviz::parse_npy(b, "fuzz.npy");
    attnviz::fuzz::exercise(attnviz::import_bytes(b, "fuzz.npy"));
  });
}
