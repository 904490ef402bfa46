// libFuzzer target: every model-file loader (MNIST models, text classifiers, translator).
#include "fuzz_common.hpp"
#include "fuzz_file.hpp"

#include <attnviz/models/mnist.hpp>
#include <attnviz/models/textcls.hpp>
#include <attnviz/models/translator.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = attnviz::fuzz::to_temp_file(data, size, ".safetensors");
  return attnviz::fuzz::run(data, size, [&](const std::string&) {
    try {
      (void)attnviz::load_mnist_model(path);
    } catch (const attnviz::InputError&) {
    }
    try {
      (void)attnviz::load_textcls_model(path);
    } catch (const attnviz::InputError&) {
    }
    (void)attnviz::load_translator(path);
  });
}
