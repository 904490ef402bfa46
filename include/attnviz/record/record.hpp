// AttentionRecord: the one seam between computing and drawing — named attention tensors,
// tokens per axis, an optional image, metadata — and its .safetensors file format.
#pragma once
#include <attnviz/tensor.hpp>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace attnviz {

// One attention tensor, float32 [heads, queries, keys], row-major.
struct AttentionTensor {
  std::string name;        // where it comes from: "encoder.layer0.self", "decoder.layer1.cross", "pool"
  int heads = 0, queries = 0, keys = 0;
  std::vector<float> data; // [heads * queries * keys]
  std::string query_axis;  // key into AttentionRecord::tokens for the query tokens ("" = none)
  std::string key_axis;    // same for the key tokens

  AttentionTensor() = default;
  AttentionTensor(std::string name, int heads, int queries, int keys,
                  std::string query_axis = "", std::string key_axis = "");
  float& at(int h, int q, int k) { return data[(static_cast<size_t>(h) * queries + q) * keys + k]; }
  float at(int h, int q, int k) const { return data[(static_cast<size_t>(h) * queries + q) * keys + k]; }
  Mat head(int h) const;          // [queries, keys]
  Mat mean_heads() const;         // [queries, keys]
  void set_head(int h, const Mat& m);
};

// The input image of a vision record: pixels in [0, 1], and how it was cut into patches.
struct RecordImage {
  int height = 0, width = 0;
  std::vector<float> pixels;  // [height * width], row-major
  int patch_rows = 0, patch_cols = 0;  // patch grid (0 = unknown)
  int prefix_tokens = 0;               // tokens before the patches in the sequence (1 for CLS)
};

// "encoder.layer3.self" -> {stack "encoder", layer 3, kind "self"}; names that do not follow the
// pattern keep stack = name, layer = -1.
struct TensorName {
  std::string stack;
  int layer = -1;
  std::string kind;
};
TensorName parse_tensor_name(const std::string& name);

struct AttentionRecord {
  std::vector<AttentionTensor> tensors;     // attention weights
  std::vector<AttentionTensor> gradients;   // d(output)/d(attention), same names as their tensors
  // LRP relevance of each attention map (Chefer et al. 2021; signed, not attention), same names
  // and shapes as their tensors; `record mnist` stores it for the ViT, saliency method "chefer" reads it.
  std::vector<AttentionTensor> relevance;
  std::map<std::string, std::vector<std::string>> tokens;  // axis name -> token strings
  std::optional<RecordImage> image;
  std::map<std::string, std::string> metadata;              // free-form: model, attention, label, ...

  const AttentionTensor* find(const std::string& name) const;
  const AttentionTensor* find_gradient(const std::string& name) const;
  const AttentionTensor* find_relevance(const std::string& name) const;
  // Tokens of an axis, or nullptr when the axis has none.
  const std::vector<std::string>* axis_tokens(const std::string& axis) const;
  // Tensors of one stack and kind ("encoder", "self"), ordered by layer.
  std::vector<const AttentionTensor*> layers(const std::string& stack, const std::string& kind) const;
  // Throws InputError(path, ...) if names repeat, sizes disagree with shapes or token counts
  // disagree with the axis they label.
  void validate(const std::string& path) const;
};

// Files: one record, or several (a batch of samples) in one .safetensors file.
void save_record(const std::filesystem::path& path, const AttentionRecord& record);
void save_records(const std::filesystem::path& path, const std::vector<AttentionRecord>& records);
std::vector<AttentionRecord> load_records(const std::filesystem::path& path);
AttentionRecord load_record(const std::filesystem::path& path, int sample = 0);

struct StFile;
// Conversions to and from the generic safetensors container (exposed for importers and tests).
StFile records_to_safetensors(const std::vector<AttentionRecord>& records);
std::vector<AttentionRecord> records_from_safetensors(const StFile& file, const std::string& path);

}  // namespace attnviz
