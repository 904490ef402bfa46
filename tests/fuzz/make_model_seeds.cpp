// Writes tiny model files of every architecture (seeds for fuzz_model) into OUT_DIR
// (target make_model_seeds of the fuzz build; the files it wrote are committed).
#include "model_loaders.hpp"

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 1;
  }
  attnviz::fuzz::save_mnist_seeds(argv[1]);
  attnviz::fuzz::save_textcls_seeds(argv[1]);
  attnviz::fuzz::save_translator_seeds(argv[1]);
  return 0;
}
