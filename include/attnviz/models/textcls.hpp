// Text classifiers whose attention says which words decided the label: a bidirectional GRU with
// attention pooling ("bigru") and a small transformer encoder with a CLS token ("transformer");
// their config, model files, batching, training (checkpoints, resume), evaluation and recording.
#pragma once
#include <attnviz/analysis/classify_metrics.hpp>
#include <attnviz/data/fortunes.hpp>
#include <attnviz/engine/param.hpp>
#include <attnviz/engine/rng.hpp>
#include <attnviz/models/model.hpp>
#include <attnviz/record/record.hpp>
#include <attnviz/tensor.hpp>
#include <attnviz/text/bpe.hpp>
#include <attnviz/text/tokenizer.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnviz::models {

struct TextClsConfig {
  std::string arch = "bigru";     // "bigru" | "transformer"
  std::string score = "additive"; // bigru pooling score: "additive" | "general" | "scaled-dot"
  int embed = 64;                 // bigru: word embedding width E
  int hidden = 64;                // bigru: GRU state per direction H (encoder output 2H)
  int attn_hidden = 64;           // bigru additive score: hidden width A
  int dim = 64;                   // transformer: model width D
  int layers = 2;                 // transformer: encoder blocks L
  int heads = 4;                  // transformer: heads (D % heads == 0)
  int mlp = 128;                  // transformer: MLP hidden width
  int max_len = 64;               // word tokens kept per text (longer texts are cut)
  float dropout = 0.3f;           // on embeddings and on the pooled vector (training only)
  float word_dropout = 0.1f;      // training only: each word is replaced by <unk> with this chance
  bool embed_skip = true;         // bigru: pool over [GRU state | word embedding] (2H + E wide), so
                                  // the pooled vector also sees each word itself, not only its context
  int bpe = 0;                    // byte-pair merges learned on the training texts (--bpe N; 0 = words);
                                  // the merges are stored as "bpe" (TextClassifier::set_bpe)
  int vocab = 0;                  // V (set from the vocabulary)
  int classes = 0;                // C (set from the labels)

  void validate() const;          // UsageError on impossible values
  std::string to_json() const;
  static TextClsConfig from_json(const std::string& json, const std::string& path);
};

// A padded batch of texts: ids [B*T] (row b*T + t; <pad> after lengths[b]), T = max length.
struct TextBatch {
  int B = 0, T = 0;
  std::vector<int> ids;       // [B*T]
  std::vector<int> lengths;   // [B], each >= 1
};

// Kind "textcls"; the file keeps the vocabulary ("vocab") and the label names ("labels") besides
// the config. Parameter tables: textcls_arch.hpp.
class TextClassifier : public Model {
 public:
  TextClassifier(const TextClsConfig& cfg, Vocabulary vocab, std::vector<std::string> labels)
      : cfg_(cfg), vocab_(std::move(vocab)), labels_(std::move(labels)) {}

  std::string kind() const override { return "textcls"; }
  std::string config_json() const override { return cfg_.to_json(); }
  std::map<std::string, std::string> file_metadata() const override;
  const TextClsConfig& config() const { return cfg_; }
  const Vocabulary& vocab() const { return vocab_; }
  const std::vector<std::string>& labels() const { return labels_; }
  const Bpe& bpe() const { return bpe_; }
  void set_bpe(Bpe bpe) { bpe_ = std::move(bpe); }
  std::string name() const { return "textcls-" + cfg_.arch; }   // model name in records

  // Display tokens of a text (case kept), cut to max_len; never empty (an empty text gives "∅").
  // With BPE merges: the pieces ("Zeit@@ zone"), cut at the same code points as the case-folded
  // word's pieces.
  std::vector<std::string> tokens(const std::string& text) const;
  TextBatch batch(const std::vector<std::string>& texts) const;

  // batch -> logits [B, C]. dropout_rng: nullptr = evaluation. Caches for backward. sink
  // (optional): every attention tensor of the pass, [B, H, Nq, Nk] ("pool", "encoder.layer{l}.self");
  // only then are they kept for attention() (without a sink the transformer computes no weights).
  virtual Mat forward(const TextBatch& batch, nn::Rng* dropout_rng = nullptr, AttentionSink* sink = nullptr) = 0;
  virtual void backward(const Mat& dlogits) = 0;   // [B, C]; adds into the params' grads
  // Attention of text b of the last forward, cropped to its length: "pool" [1, 1, T] (key axis
  // "tokens", query axis "query"), and for the transformer every "encoder.layer{l}.self"
  // [H, T+1, T+1] over axis "tokens_cls" ([CLS] + tokens).
  virtual std::vector<AttentionTensor> attention(int b) const = 0;
  // How the "pool" tensor was obtained (metadata of records).
  virtual std::string pool_description() const = 0;
  // Chefer et al. (2021) for the last forward (evaluation, with a sink): explain class klass[b] of
  // text b. One backward pass from that logit gives d(logit)/d(attention) of every layer, and the
  // LRP rules of engine/relevance.hpp from the same logit give the relevance R^(l) of every
  // attention map. Parameter gradients are left zeroed. Returns false when the architecture has no
  // such rules (the BiGRU); throws std::logic_error without a forward with a sink.
  virtual bool explain(const std::vector<int>& klass) { (void)klass; return false; }
  // After explain(): gradients and relevance of text b, named and cropped as attention(b)'s
  // "encoder.layer{l}.self" tensors; empty otherwise.
  virtual std::vector<AttentionTensor> attention_grads(int b) const { (void)b; return {}; }
  virtual std::vector<AttentionTensor> attention_relevance(int b) const { (void)b; return {}; }
  // After explain(): the relevance of the token embeddings [B*(T+1), D]; per text it sums to the
  // relevance the head passes on (1 when the explained logit's head column has inputs of its
  // sign, the rules conserve it from there). Empty otherwise.
  virtual Mat input_relevance() const { return {}; }

 protected:
  TextClsConfig cfg_;
  Vocabulary vocab_;
  std::vector<std::string> labels_;
  Bpe bpe_;
};

// Builds (and initialises with `seed`) a model; cfg.vocab / cfg.classes are set from the arguments.
std::unique_ptr<TextClassifier> make_textcls_model(TextClsConfig cfg, Vocabulary vocab,
                                                   std::vector<std::string> labels, std::uint64_t seed);

// The model vocabulary: case-folded word tokens of the training texts seen >= min_count times
// (with `bpe`: their pieces).
Vocabulary build_text_vocab(const std::vector<std::string>& texts, int min_count, const Bpe& bpe = {});
// BPE merges (text/bpe.hpp) learned from the case-folded words of the texts.
Bpe learn_text_bpe(const std::vector<std::string>& texts, int merges);

// Model files: .safetensors with every parameter and metadata "attnviz.model" = "textcls",
// "config", "vocab", "labels" (JSON), plus `extra` (data source, split, training state).
void save_textcls_model(const std::filesystem::path& path, const TextClassifier& model,
                        const std::map<std::string, std::string>& extra = {}, const StFile* append = nullptr);
struct LoadedTextModel {
  std::unique_ptr<TextClassifier> model;
  std::map<std::string, std::string> metadata;   // everything stored, including `extra`
};
LoadedTextModel load_textcls_model(const std::filesystem::path& path);

// Where the data comes from and how it is split; stored in model files so `eval` and `record`
// find the same test set.
struct TextDataSource {
  std::filesystem::path tsv;                 // label<TAB>text file; "" = the fortunes package
  FortunesOptions fortunes;                  // used when tsv is empty
  double test_fraction = 0.2;
  std::uint64_t split_seed = 1;

  TextSplit load() const;                    // read + stratified split
  std::string describe() const;              // "fortunes (computers, science, ...)" or the TSV path
  std::map<std::string, std::string> to_metadata() const;   // "data.*" keys
  // Reads "data.*" keys (missing keys keep the defaults); path for error messages.
  static TextDataSource from_metadata(const std::map<std::string, std::string>& meta, const std::string& path);
};

// ---------------------------------------------------------------------------------------------
// Named metrics: "accuracy", "macro_f1", "loss".
struct TextEvalResult : EvalResult {
  std::vector<int> predictions;            // [N]
  std::vector<float> probabilities;        // [N] softmax probability of the prediction
  double loss = 0;                         // mean cross-entropy
  ClassMetrics classes;                    // per-class precision / recall / F1, confusion
};
TextEvalResult evaluate_textcls(TextClassifier& model, const TextDataset& data, int batch = 64);

// ---------------------------------------------------------------------------------------------
struct TextToRecord {
  std::string text;
  int label = -1;                 // true class (-1 = unknown)
  std::string source;             // "text", "test #12", ...
};
// One record per text: the attention tensors, tokens ("tokens", "query", and "tokens_cls" for the
// transformer), metadata: model, arch, attention (score), text, label (name, when known),
// prediction, probability, correct, source, classes (JSON list), pool (how it was computed).
// what: also norm-based attention and value zeroing (the transformer only; the BiGRU ignores it).
std::vector<AttentionRecord> record_textcls(TextClassifier& model, const std::vector<TextToRecord>& texts,
                                            const RecordOptions& what = {});

}  // namespace attnviz::models
