// The model contract every family implements: a kind, a JSON config, named parameters, forward
// with an optional attention sink, backward where the model trains, and one evaluation result type.
#pragma once
#include <attnviz/engine/attention.hpp>
#include <attnviz/engine/param.hpp>
#include <attnviz/io/safetensors.hpp>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace attnviz::models {

// Receives attention weights while a model computes them. A forward pass given no sink computes
// no weights at all (the kernel's weights pass is skipped); a sink never changes the numbers.
class AttentionSink {
 public:
  virtual ~AttentionSink() = default;
  // One attention tensor of one forward pass: weights [B, H, Nq, Nk] named like a record tensor
  // ("encoder.layer0.self", "decoder.layer2.self", "pool"). With a KV cache the Nq query rows are
  // positions query_offset .. query_offset + Nq - 1 of the sequence. The sink may keep (move) w.
  virtual void weights(const std::string& name, nn::AttentionWeights&& w, int query_offset = 0) = 0;
  // Models that can also hand out d(output)/d(weights) after backward ask this first.
  virtual bool wants_gradients() const { return false; }
  // Models built on nn::MultiHeadAttention also hand out norm-based attention (Kobayashi et al.
  // 2020, nn::norm_attention) when asked: "<name>.norm" [B, H, Nq, Nk] per head and
  // "<name>.norm_sum" [B, 1, Nq, Nk] summed over heads through the output projection.
  virtual bool wants_norms() const { return false; }
  // Models built on nn::EncoderBlock, the pretrained encoders and the decoder LMs also hand out
  // context mixing by value zeroing (Mohebbi et al. 2023, nn::value_zeroing) when asked:
  // "<name>.mixing" [B, 1, Nq, Nk] for each self-attention block.
  virtual bool wants_mixing() const { return false; }
  virtual void gradients(const std::string& name, nn::AttentionWeights&& dw) {}
};

// What a model's record function records besides the attention weights.
struct RecordOptions {
  bool norms = false;   // norm-based attention "<name>.norm" / "<name>.norm_sum" (models on nn::MultiHeadAttention)
  bool mixing = false;  // value zeroing "<name>.mixing" (self-attention of models on nn::EncoderBlock)
  // Chefer et al. (2021): the transformer classifier records the attention gradients and the LRP
  // relevance of every attention map (AttentionRecord::gradients / ::relevance); the MNIST ViT
  // records them with or without this; the transformer translator adds its relevance maps
  // "decoder.relevance_cross" etc. (Translator::relevance).
  bool relevance = false;
};

// The simplest sink: keeps the last weights (and gradients) of every tensor by name.
class AttentionCollector : public AttentionSink {
 public:
  explicit AttentionCollector(bool gradients = false, bool norms = false, bool mixing = false)
      : want_grads_(gradients), want_norms_(norms), want_mixing_(mixing) {}
  void weights(const std::string& name, nn::AttentionWeights&& w, int query_offset = 0) override;
  bool wants_gradients() const override { return want_grads_; }
  bool wants_norms() const override { return want_norms_; }
  bool wants_mixing() const override { return want_mixing_; }
  void gradients(const std::string& name, nn::AttentionWeights&& dw) override;

  std::vector<std::string> names;                      // in the order first seen
  std::map<std::string, nn::AttentionWeights> w;       // [B, H, Nq, Nk] by name
  std::map<std::string, nn::AttentionWeights> dw;      // same shapes, after backward

 private:
  bool want_grads_ = false;
  bool want_norms_ = false;
  bool want_mixing_ = false;
};

// One result type for every evaluation: named metrics in a fixed order (accuracy, macro_f1,
// exact_match, bleu, aer, ...), plus free-form per-example outputs a caller may want.
struct EvalResult {
  std::vector<std::pair<std::string, double>> metrics;   // display order
  std::map<std::string, std::string> notes;              // e.g. "data" -> "MNIST test (10000)"

  void set(const std::string& name, double value);       // adds or replaces
  bool has(const std::string& name) const;
  double get(const std::string& name) const;             // throws std::out_of_range when absent
};

// Every model: its kind (the "attnviz.model" value of its file), JSON config, parameters.
class Model {
 public:
  virtual ~Model() = default;
  Model() = default;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  virtual std::string kind() const = 0;          // "mnist", "translator", "textcls", "llama", "gpt2"
  virtual std::string config_json() const = 0;   // enough, with the parameters, to rebuild the model
  // Metadata besides the config that a model file must keep (vocabularies, labels): key -> JSON.
  virtual std::map<std::string, std::string> file_metadata() const { return {}; }
  // Renames (and reshapes) in place the tensors of a file an earlier release wrote to this
  // release's parameter names; load_model and the trainer's resume call it before loading.
  virtual void upgrade_tensors(StFile& file) const {}
  nn::ParamSet& params() { return params_; }
  const nn::ParamSet& params() const { return params_; }

 protected:
  nn::ParamSet params_;
};

}  // namespace attnviz::models
