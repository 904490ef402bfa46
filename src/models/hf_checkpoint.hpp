// A Hugging Face model directory as the family loaders see it (private to src/models): config.json,
// the safetensors headers of model.safetensors or of every shard named by
// model.safetensors.index.json, and reading one tensor once its name and shape were checked.
#pragma once
#include <attnviz/io/safetensors.hpp>
#include <attnviz/tensor.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace attnviz::models::hf {

struct TensorRef {
  std::filesystem::path file;   // the safetensors file (shard) holding it
  StTensor info;                // dtype, shape, file_offset; no data
};

// One expected tensor of a family: the checkpoint name and the shape the config implies.
struct Expect {
  std::string name;
  std::vector<std::int64_t> shape;
  bool optional = false;
};

class Checkpoint {
 public:
  // Reads config.json and every safetensors header (nothing large). Throws InputError naming the
  // file: a missing or malformed config.json / index / shard, a tensor named twice across shards.
  static Checkpoint open(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  const nlohmann::json& config() const { return config_; }
  std::string config_path() const { return (dir_ / "config.json").string(); }
  const std::map<std::string, TensorRef>& tensors() const { return tensors_; }
  const TensorRef* find(const std::string& name) const;
  // The file a message about this tensor names (its shard, else model.safetensors).
  std::string file_of(const std::string& name) const;

  // config.json values; throw InputError(config.json, "key: ...") when absent or of the wrong kind.
  int get_int(const std::string& key, long lo, long hi) const;
  int get_int(const std::string& key, long lo, long hi, int fallback) const;   // absent or null -> fallback
  double get_float(const std::string& key, double fallback) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  // The first of several spellings present ("n_embd" | "hidden_size"); -1 when none is.
  const nlohmann::json* first_of(std::initializer_list<const char*> keys) const;

  // Every tensor of `expect` (optional ones may be absent) with exactly that shape ([n] and [1, n]
  // are the same vector), and no tensor outside it except names matching `ignore` (prefixes or
  // suffixes such as ".attn.bias"). Throws InputError naming the file, the tensor, expected and found.
  void check(const std::vector<Expect>& expect, const std::vector<std::string>& ignore_suffixes,
             const std::string& family) const;
  // Reads one tensor as float32 [rows, cols] in stored row-major order (cols = product of the
  // trailing dimensions); non-finite values are refused.
  Mat read(const std::string& name, long rows, long cols) const;

 private:
  std::filesystem::path dir_;
  nlohmann::json config_;
  std::map<std::string, TensorRef> tensors_;
};

std::string shape_str(const std::vector<std::int64_t>& s);

}  // namespace attnviz::models::hf
