// libFuzzer target: the IDX (MNIST) image and label loaders, plain and gzip-compressed.
#include "fuzz_common.hpp"
#include "fuzz_file.hpp"

#include <attnviz/data/idx.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = attnviz::fuzz::to_temp_file(data, size, ".idx");
  return attnviz::fuzz::run(data, size, [&](const std::string&) {
    try {
      (void)attnviz::load_idx_images(path);
    } catch (const attnviz::InputError&) {
    }
    (void)attnviz::load_idx_labels(path, 10);
  });
}
