// Hugging Face model directories: what `attnviz inspect DIR` prints, and which loader a directory
// needs (decoder LMs: load_lm_hf in lm.hpp; encoders: load_encoder_hf in encoder.hpp).
#pragma once
#include <filesystem>
#include <string>

namespace attnviz::models {

bool is_hf_dir(const std::filesystem::path& path);               // a folder with a config.json
std::string hf_model_type(const std::filesystem::path& dir);     // config.json model_type (InputError)
bool hf_is_encoder(const std::string& model_type);               // bert, roberta, distilbert, vit
// Multi-line description: model type, sizes from config.json, weight files, tensor count by dtype,
// parameters, tokenizer files; the whole family check runs (a malformed directory throws).
std::string describe_hf_dir(const std::filesystem::path& dir);

}  // namespace attnviz::models
