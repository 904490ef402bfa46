// MNIST classifiers with recordable attention: a small ViT ("vit") and an attention-pooling
// baseline ("pool"); their config, model files, training, evaluation and recording.
#pragma once
#include <attnviz/data/idx.hpp>
#include <attnviz/engine/param.hpp>
#include <attnviz/models/model.hpp>
#include <attnviz/record/record.hpp>
#include <attnviz/tensor.hpp>

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <stdexcept>
#include <memory>
#include <string>
#include <vector>

namespace attnviz::models {

struct MnistConfig {
  std::string arch = "vit";  // "vit" | "pool"
  int image = 28;            // square images of image x image pixels
  int patch = 4;             // square patches: (image/patch)^2 = P tokens (+ CLS for vit)
  int dim = 64;              // D
  int depth = 4;             // vit: encoder blocks L
  int heads = 4;             // vit: heads H (D % H == 0)
  int mlp = 128;             // vit: MLP hidden width
  int classes = 10;

  int grid() const { return image / patch; }
  int patches() const { return grid() * grid(); }
  int tokens() const { return patches() + (arch == "vit" ? 1 : 0); }
  void validate() const;                  // UsageError on impossible sizes
  std::string to_json() const;
  static MnistConfig from_json(const std::string& json, const std::string& path);
};

// A classifier of [B, image*image] pixel rows in [0, 1].
// Kind "mnist"; parameters named as listed by each architecture (vit.hpp, pool_classifier.hpp).
class MnistModel : public Model {
 public:
  explicit MnistModel(const MnistConfig& cfg) : cfg_(cfg) {}

  std::string kind() const override { return "mnist"; }
  std::string config_json() const override { return cfg_.to_json(); }
  const MnistConfig& config() const { return cfg_; }

  // images: [B, image*image] -> logits [B, classes]. Caches what backward needs. sink (optional)
  // receives every attention tensor [B, H, Nq, Nk] ("vit.layer{l}.self" or "pool"); the ViT
  // computes its weights only for a sink.
  virtual Mat forward(const Mat& images, AttentionSink* sink = nullptr) = 0;
  // dlogits: [B, classes]; adds into the parameters' grads; computes the attention gradients and
  // hands them to sink when it wants_gradients() (names as in forward; the ViT only).
  virtual void backward(const Mat& dlogits, AttentionSink* sink = nullptr) = 0;
  // Set by the trainer around its steps: a forward without a sink may skip what cannot reach the
  // logits (the ViT runs its last block on the CLS rows only, EncoderBlock::forward_row), so logits
  // and gradients equal the full forward's up to float rounding. Off (the default), a forward without
  // a sink computes the same numbers as one with a sink.
  bool logits_only = false;
  // Attention of sample b of the last forward, as record tensors ("vit.layer{l}.self" [H, T, T]
  // with axes "tokens"; or "pool" [1, 1, P] with query axis "query"); the ViT's is empty unless
  // that forward had a sink.
  virtual std::vector<AttentionTensor> attention(int b) const = 0;
  // d(sum of dlogits . logits)/d(attention) of sample b after a backward whose sink wanted
  // gradients (empty otherwise, or if unsupported).
  virtual std::vector<AttentionTensor> attention_grads(int b) const = 0;
  // LRP relevance (Chefer et al. 2021, nn::lrp_encoder_block) for the last forward, which must have
  // had a sink: seeded at the logits with R [B, classes] (one one-hot row per sample for the class
  // explained, as Chefer et al. do) and propagated back to the token embeddings. Returns the
  // relevance there [B*T, D] (row sums per sample equal R's row sums, see relevance.hpp); empty
  // when the architecture has none (pool).
  virtual Mat relevance(const Mat& R) { return {}; }
  // R^(b) of every attention map of sample b after relevance(), named as the maps ("vit.layer{l}.self",
  // [H, T, T], axes "tokens"); empty before relevance() or when unsupported.
  virtual std::vector<AttentionTensor> attention_relevance(int b) const { return {}; }
  // Token strings of the sequence: "CLS", "p0_0", ... ("p<row>_<col>").
  std::vector<std::string> tokens() const;

 protected:
  MnistConfig cfg_;
};

std::unique_ptr<MnistModel> make_mnist_model(const MnistConfig& cfg, std::uint64_t seed);

// Model files (see model_file.hpp): save_model / load_model, plus any extra metadata given.
// load_mnist_model refuses another kind of model with a message naming it.
void save_mnist_model(const std::filesystem::path& path, const MnistModel& model,
                      const std::map<std::string, std::string>& extra = {});
std::unique_ptr<MnistModel> load_mnist_model(const std::filesystem::path& path);

// Pixel rows of images `indices` of a set: [indices.size(), rows*cols].
Mat image_batch(const ImageSet& set, const std::vector<int>& indices);

// ---------------------------------------------------------------------------------------------
// Named metrics: "accuracy", "loss".
struct MnistEvalResult : EvalResult {
  long count = 0, correct = 0;
  double loss = 0;                               // mean cross-entropy
  std::vector<int> predictions;                  // [count]
  std::vector<float> probabilities;              // [count] softmax probability of the prediction
  std::vector<std::array<long, 10>> confusion;   // [true][predicted]
  double accuracy() const { return count ? static_cast<double>(correct) / count : 0; }
  // The confusion matrix as rows of counts (render::layout_confusion draws it).
  std::vector<std::vector<long>> confusion_rows() const {
    std::vector<std::vector<long>> rows;
    for (const auto& r : confusion) rows.emplace_back(r.begin(), r.end());
    return rows;
  }
  std::vector<double> per_class_accuracy() const;
};
MnistEvalResult evaluate_mnist(MnistModel& model, const ImageSet& set, int batch = 256);

// ---------------------------------------------------------------------------------------------
// Records of images `indices`: every attention tensor, the image [rows, cols] with its patch grid,
// tokens, metadata (index, label, prediction, probability, model, explained), the gradient of the
// explained class's logit with respect to every attention tensor and, for the ViT, the LRP relevance
// of every attention map for that class (AttentionRecord::relevance, MnistModel::relevance).
// what: also norm-based attention and value zeroing (the ViT only; the pooling model ignores it).
// explain_class: the class explained (-1 = each image's prediction; UsageError outside [0, classes)).
std::vector<AttentionRecord> record_mnist(MnistModel& model, const ImageSet& set, const std::vector<int>& indices,
                                          const std::string& model_name = "", const RecordOptions& what = {},
                                          int explain_class = -1);

// Which images to record (`record mnist`, the demo): the first `first` images, or the first
// `misclassified` images whose prediction is wrong; with klass >= 0 only images of that true class.
struct ExampleSelection {
  int first = 16;
  int misclassified = 0;   // > 0: wrong predictions instead of the first images
  int klass = -1;          // -1 = every class
};
// predictions: [set.count] (evaluate_mnist), needed only when misclassified > 0 (std::invalid_argument
// when missing). Returns image numbers in increasing order; UsageError when none match.
std::vector<int> select_examples(const ImageSet& set, const ExampleSelection& sel,
                                 const std::vector<int>& predictions = {});

}  // namespace attnviz::models
