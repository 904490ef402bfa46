// Translation models behind one interface: the RNN seq2seq (bidirectional GRU encoder, GRU
// decoder with additive / dot / general / scaled-dot attention and input feeding) and the
// transformer; teacher-forced training, greedy and beam decoding, attention recording, model
// files, and evaluation (exact match, BLEU-4, alignment AER).
#pragma once
#include <attnviz/analysis/alignment.hpp>
#include <attnviz/analysis/bleu.hpp>
#include <attnviz/data/corpus.hpp>
#include <attnviz/engine/nn.hpp>
#include <attnviz/record/record.hpp>
#include <attnviz/text/tokenizer.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace attnviz::models {

struct TranslatorConfig {
  std::string arch = "rnn";                   // "rnn" | "transformer"
  nn::Score attention = nn::Score::Additive;  // rnn scoring function (transformer: scaled-dot)
  // rnn: which decoder state queries the attention for target token y_t. "current": s_t, after
  // the GRU has read y_{t-1} (Luong); "previous": s_{t-1}, before reading y_{t-1} (Bahdanau).
  std::string query = "current";
  int embed = 64;        // rnn: E (embedding width)
  int hidden = 64;       // rnn: H per encoder direction; decoder state and keys are 2H
  int dim = 64;          // transformer: D
  int heads = 4;         // transformer: H
  int layers = 2;        // transformer: L encoder and L decoder blocks
  int ff = 128;          // transformer: MLP hidden width
  int max_len = 128;     // transformer: learned positions (longest sequence incl. <eos>/<bos>)
  float dropout = 0.f;
  // rnn: weight of the coverage penalty added to the training loss (Xu et al. 2015's "doubly
  // stochastic attention", Cohn et al. 2016's global fertility): lambda/N * sum over sentences and
  // source positions (incl. <eos>) of (1 - sum_t a_ti)^2, N = target tokens in the batch. It
  // asks every source word to be attended about once in total; no gold alignment is used.
  // Negative = the default for the scoring function: kDefaultAdditiveCoverage for additive, 0 for
  // the others (see README, "Measured"). Resolved by make_translator; the transformer ignores it.
  float coverage = -1.f;
  TokenizerOptions tokenizer;   // how raw text (--text, TSV) is tokenized for this model
  bool pretokenized = false;
};

// Token ids without <bos>/<eos> (the models add them).
struct Example {
  std::vector<int> src, tgt;
};

inline constexpr float kDefaultAdditiveCoverage = 0.05f;

struct BatchResult {
  double loss = 0;    // mean cross-entropy per target token
  int tokens = 0;     // target tokens counted (incl. <eos>)
  int correct = 0;    // argmax == target
  double penalty = 0; // coverage penalty (already divided by the target tokens); loss + penalty is minimised
};

class Translator {
 public:
  TranslatorConfig config;
  Vocabulary src_vocab, tgt_vocab;
  nn::ParamSet params;

  virtual ~Translator() = default;
  virtual void init(std::uint64_t seed) = 0;
  // Teacher-forced forward + backward over a batch; adds into the parameter gradients.
  // dropout_rng: nullptr = no dropout.
  virtual BatchResult train_batch(const std::vector<const Example*>& batch, nn::Rng* dropout_rng) = 0;

  // Step-by-step decoding over R rows (sentences or beam hypotheses).
  struct State {
    virtual ~State() = default;
  };
  virtual std::unique_ptr<State> start(const std::vector<std::vector<int>>& src) = 0;  // one row per sentence
  virtual void select(State& state, const std::vector<int>& rows) = 0;                // keep/duplicate rows
  virtual Mat step(State& state, const std::vector<int>& prev) = 0;                   // log-probs [R, V]

  // Teacher-forced run on (src, tgt) that records attention: "decoder.layerL.cross" [H, T+1, S+1]
  // (rows: target tokens + <eos>, columns: source tokens + <eos>), and for the transformer
  // "encoder.layerL.self" and "decoder.layerL.self" too. Tokens, model name, attention kind in metadata.
  virtual AttentionRecord record(const std::vector<int>& src, const std::vector<int>& tgt) = 0;

  std::string attention_kind() const;   // "additive", ..., or "scaled-dot" for the transformer
  std::string name() const;             // "rnn-additive", "transformer-L2-H4"
};

std::unique_ptr<Translator> make_translator(const TranslatorConfig& config, Vocabulary src, Vocabulary tgt);

// ---- files -----------------------------------------------------------------------------------

// Parameters + config + vocabularies (metadata), optionally the optimizer state and extra
// metadata (epoch, ...) for checkpoints. Atomic.
void save_translator(const std::filesystem::path& path, const Translator& model, const nn::Adam* optimizer = nullptr,
                     const std::map<std::string, std::string>& extra = {});
// Throws InputError(path, ...) when the file is not a translation model or does not match.
std::unique_ptr<Translator> load_translator(const std::filesystem::path& path, StFile* file_out = nullptr);

// ---- data ------------------------------------------------------------------------------------

std::vector<Example> encode_corpus(const Translator& model, const ParallelCorpus& corpus);
std::vector<std::string> tokenize_for(const TranslatorConfig& config, const std::string& text);

// ---- training --------------------------------------------------------------------------------

struct TrainOptions {
  int epochs = 12;
  int batch = 32;
  float lr = 3e-3f;
  float min_lr_ratio = 0.05f;   // cosine decay to lr * ratio
  int warmup = 100;             // steps
  float clip = 1.0f;            // global gradient norm
  std::uint64_t seed = 1;
};

// Batches of one epoch: shuffled by (seed, epoch), grouped by similar source length.
std::vector<std::vector<const Example*>> make_batches(const std::vector<Example>& data, int batch_size,
                                                      std::uint64_t seed, int epoch);

// One epoch of teacher-forced training with Adam (lr from warmup_cosine over all epochs; the
// step count comes from the optimizer, so --resume continues the schedule). progress(done, loss).
BatchResult train_epoch(Translator& model, nn::Adam& opt, const std::vector<Example>& data, int epoch,
                        const TrainOptions& options, const std::function<void(long, double)>& progress = {});

// ---- decoding --------------------------------------------------------------------------------

// Greedy decoding of many sentences at once (batched). Outputs stop before <eos>; at most
// max_len tokens (0 = 2 * source length + 10).
std::vector<std::vector<int>> greedy_decode(Translator& model, const std::vector<std::vector<int>>& src, int max_len = 0);

struct BeamOptions {
  int width = 4;
  float length_penalty = 1.0f;   // finished hypotheses ranked by logprob / length^alpha (0 = raw)
  int max_len = 0;               // 0 = 2 * source length + 10
};
std::vector<int> beam_decode(Translator& model, const std::vector<int>& src, const BeamOptions& opt);

// model.record() plus tokens ("source", "target", "target_input", with <eos>/<bos>) and metadata
// (model, attention, arch, source/target text). When the words behind src/tgt are given (same
// length), out-of-vocabulary positions are labelled with the word itself instead of <unk>, so a
// plot of a real sentence stays readable; metadata "unknown_source"/"unknown_target" count them.
AttentionRecord record_translation(Translator& model, const std::vector<int>& src, const std::vector<int>& tgt,
                                   const std::vector<std::string>* source_words = nullptr,
                                   const std::vector<std::string>* target_words = nullptr);

// ---- evaluation ------------------------------------------------------------------------------

struct EvalOptions {
  int beam = 1;                   // 1 = greedy (batched)
  float length_penalty = 1.0f;
  AlignOptions align;             // how alignments are extracted from attention
  int batch = 64;
};

struct LayerAlignment {
  std::string tensor;             // "decoder.layer0.cross" (mean over heads)
  AlignmentScore score;
};

struct EvalResult {
  int sentences = 0;
  int exact = 0;                  // hypothesis == reference (token for token)
  BleuScore bleu;
  std::vector<LayerAlignment> alignment;   // one per decoder layer; empty without gold
  double seconds = 0;
  std::vector<std::vector<std::string>> hypotheses;
};

EvalResult evaluate_translator(Translator& model, const ParallelCorpus& corpus, const EvalOptions& opt);

}  // namespace attnviz::models
