// The model-file loaders called by fuzz_model and make_model_seeds, one translation unit per model
// family (their headers cannot share one TU: mnist.hpp and translator.hpp both define
// attnviz::models::TrainOptions and EvalResult).
#pragma once
#include <string>

namespace attnviz::fuzz {
void load_mnist(const std::string& path);
void load_textcls(const std::string& path);
void load_translator(const std::string& path);
void save_mnist_seeds(const std::string& dir);
void save_textcls_seeds(const std::string& dir);
void save_translator_seeds(const std::string& dir);
}  // namespace attnviz::fuzz
