// MNIST classifiers with recordable attention: a small ViT ("vit") and an attention-pooling
// baseline ("pool"); their config, model files, training, evaluation and recording.
#pragma once
#include <attnviz/data/idx.hpp>
#include <attnviz/engine/param.hpp>
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
class MnistModel {
 public:
  explicit MnistModel(const MnistConfig& cfg) : cfg_(cfg) {}
  virtual ~MnistModel() = default;
  MnistModel(const MnistModel&) = delete;
  MnistModel& operator=(const MnistModel&) = delete;

  const MnistConfig& config() const { return cfg_; }
  nn::ParamSet& params() { return params_; }
  const nn::ParamSet& params() const { return params_; }

  // images: [B, image*image] -> logits [B, classes]. Caches what backward needs, including the
  // attention weights of this pass (read them with attention()).
  virtual Mat forward(const Mat& images) = 0;
  // dlogits: [B, classes]; adds into the parameters' grads; fills the attention gradients.
  virtual void backward(const Mat& dlogits) = 0;
  // Attention of sample b of the last forward, as record tensors ("vit.layer{l}.self" [H, T, T]
  // with axes "tokens"; or "pool" [1, 1, P] with query axis "query").
  virtual std::vector<AttentionTensor> attention(int b) const = 0;
  // d(sum of dlogits . logits)/d(attention) of sample b after backward (empty if unsupported).
  virtual std::vector<AttentionTensor> attention_grads(int b) const = 0;
  // Token strings of the sequence: "CLS", "p0_0", ... ("p<row>_<col>").
  std::vector<std::string> tokens() const;

 protected:
  MnistConfig cfg_;
  nn::ParamSet params_;
};

std::unique_ptr<MnistModel> make_mnist_model(const MnistConfig& cfg, std::uint64_t seed);

// Model files: .safetensors with every parameter and metadata "attnviz.model" = "mnist",
// "config" = to_json(), plus any extra metadata given.
void save_mnist_model(const std::filesystem::path& path, const MnistModel& model,
                      const std::map<std::string, std::string>& extra = {});
std::unique_ptr<MnistModel> load_mnist_model(const std::filesystem::path& path);

// Pixel rows of images `indices` of a set: [indices.size(), rows*cols].
Mat image_batch(const ImageSet& set, const std::vector<int>& indices);

// ---------------------------------------------------------------------------------------------
struct MnistEvalResult {
  long count = 0, correct = 0;
  double loss = 0;                               // mean cross-entropy
  std::vector<int> predictions;                  // [count]
  std::vector<float> probabilities;              // [count] softmax probability of the prediction
  std::vector<std::array<long, 10>> confusion;   // [true][predicted]
  double accuracy() const { return count ? static_cast<double>(correct) / count : 0; }
  std::vector<double> per_class_accuracy() const;
};
MnistEvalResult evaluate_mnist(MnistModel& model, const ImageSet& set, int batch = 256);

// ---------------------------------------------------------------------------------------------
struct MnistTrainOptions {
  int epochs = 10;
  int batch = 64;
  float lr = 2e-3f;
  float min_lr = 1e-5f;
  float weight_decay = 0.05f;    // AdamW decoupled decay (0 with adamw = plain Adam)
  bool adamw = true;
  float warmup_epochs = 0.5f;    // linear warm-up, then cosine decay to min_lr
  float clip = 1.0f;             // global-norm gradient clipping (0 = off)
  float label_smoothing = 0.f;
  int shift = 1;                 // augmentation: random shifts of up to this many pixels (0 = off)
  std::uint64_t seed = 1;
  long train_limit = 0;          // use only the first N training images (0 = all)
  std::filesystem::path checkpoint;   // written atomically after every epoch ("" = none)
  std::filesystem::path resume;       // continue from this checkpoint ("" = start fresh)
  bool constant_lr = false;      // no warm-up / cosine (used by the PyTorch comparison)
  long max_steps = 0;            // stop after this many optimizer steps in total (0 = epochs)
};

struct StepInfo {
  int epoch = 0;                 // 0-based
  long step = 0, steps = 0;      // within the epoch
  long samples = 0;              // samples done in this epoch
  double loss = 0, accuracy = 0; // running means over this epoch
  float lr = 0;
};
struct EpochInfo {
  int epoch = 0;
  double train_loss = 0, train_accuracy = 0, test_accuracy = 0;
  double seconds = 0, samples_per_second = 0;
};
struct TrainCallbacks {
  std::function<void(const StepInfo&)> on_step;
  std::function<void(const EpochInfo&)> on_epoch;
  std::function<void(int first_epoch)> on_start;   // called once, with the epoch training starts at
};

// Raised when the loss becomes NaN/Inf; training stops and the last checkpoint stays as it was.
class TrainingDiverged : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TrainResult {
  std::vector<EpochInfo> epochs;
  long steps = 0;
  double seconds = 0;             // training time (excluding evaluation)
  double samples_per_second = 0;  // training throughput over the whole run
};

// Trains `model` in place. Same seed, options and thread count give bitwise-identical parameters,
// also when the run is split by a checkpoint + resume. test may be empty (no evaluation).
TrainResult train_mnist(MnistModel& model, const ImageSet& train, const ImageSet& test, const MnistTrainOptions& opt,
                        const TrainCallbacks& cb = {});

// ---------------------------------------------------------------------------------------------
// Records of images `indices`: every attention tensor, the image [rows, cols] with its patch grid,
// tokens, metadata (index, label, prediction, probability, model) and the gradient of the
// predicted class's logit with respect to every attention tensor.
std::vector<AttentionRecord> record_mnist(MnistModel& model, const ImageSet& set, const std::vector<int>& indices,
                                          const std::string& model_name = "");

}  // namespace attnviz::models
