// libFuzzer target: .npz (ZIP central directory, stored/deflated members, npy members) and import.
#include "fuzz_common.hpp"

#include <attnviz/record/import.hpp>
#include <attnviz/io/npz.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return attnviz::fuzz::run(data, size, [](const std::string& b) {
    (void)attnviz::parse_npz(b, "fuzz.npz");
    attnviz::ImportOptions opt;
    opt.batch = 1;
    attnviz::fuzz::exercise(attnviz::import_bytes(b, "fuzz.npz", opt));
  });
}
