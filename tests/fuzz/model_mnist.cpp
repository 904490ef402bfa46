// fuzz_model helpers for the MNIST models (vit, pool): load, and tiny seed files.
#include "model_loaders.hpp"

#include <attnviz/models/mnist.hpp>

namespace attnviz::fuzz {
using namespace attnviz::models;

void load_mnist(const std::string& path) { (void)load_mnist_model(path); }

void save_mnist_seeds(const std::string& dir) {
  for (const char* arch : {"vit", "pool"}) {
    MnistConfig c;
    c.arch = arch;
    c.image = 8;
    c.patch = 4;
    c.dim = 4;
    c.depth = 1;
    c.heads = 2;
    c.mlp = 4;
    save_mnist_model(dir + "/mnist_" + arch + ".safetensors", *make_mnist_model(c, 1));
  }
}
}  // namespace attnviz::fuzz
