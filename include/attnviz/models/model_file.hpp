// One model file for every model: a .safetensors with the parameters under their table names and
// "attnviz.model" = kind, "attnviz.config" = config JSON (plus the model's file_metadata) in
// __metadata__; loading checks every tensor against the parameter table.
#pragma once
#include <attnviz/io/safetensors.hpp>
#include <attnviz/models/model.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace attnviz::models {

struct SaveModelOptions {
  std::map<std::string, std::string> metadata;   // extra __metadata__ (data source, training state)
  const StFile* extra_tensors = nullptr;         // appended tensors (a checkpoint's "optim.*" state)
};

// Writes `model` atomically. Metadata keys of the model itself win over `opt.metadata`.
void save_model(const std::filesystem::path& path, const Model& model, const SaveModelOptions& opt = {});
inline void save_model(const std::filesystem::path& path, const Model& model,
                       const std::map<std::string, std::string>& metadata) {
  save_model(path, model, SaveModelOptions{metadata, nullptr});
}

struct LoadedModel {
  std::unique_ptr<Model> model;
  StFile file;            // everything read (metadata, and tensors beyond the parameters: "optim.*")
  std::string format;     // "attnviz" or the old release's format ("mnist 0.1", "textcls 0.1", "translate 0.1")
};

// Reads any attnviz model file: "mnist", "textcls", "translator", and the three formats of the
// previous release (kind "mnist" / "textcls" with "config", kind "translate" with one key per
// field), which load as they are. Throws InputError(path, ...) naming the problem: not a model
// file, an unknown kind, a bad config, a missing / extra / mis-shaped tensor (name, expected, found).
LoadedModel load_model(const std::filesystem::path& path);

[[noreturn]] void throw_wrong_kind(const std::filesystem::path& path, const std::string& kind, const std::string& what);

// load_model for one family: throws InputError(path, "... is a <kind> model, not a <what>").
template <class M>
std::unique_ptr<M> load_model_as(const std::filesystem::path& path, const std::string& what) {
  LoadedModel lm = load_model(path);
  if (auto* m = dynamic_cast<M*>(lm.model.get())) {
    lm.model.release();
    return std::unique_ptr<M>(m);
  }
  throw_wrong_kind(path, lm.model->kind(), what);
}

// Copies the file's tensors into `params`, checking them one by one: every parameter present with
// its shape ([rows, cols], or any shape with the same element count and rows*cols layout, e.g. 1-D
// biases) and no tensor the model does not have, except names starting with an ignored prefix.
void load_parameters(nn::ParamSet& params, const StFile& file, const std::string& path,
                     const std::vector<std::string>& ignored_prefixes = {"optim."});

}  // namespace attnviz::models
