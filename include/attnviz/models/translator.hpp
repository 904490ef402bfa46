// Translation models behind one interface: the RNN seq2seq (bidirectional GRU encoder, GRU
// decoder with additive / dot / general / scaled-dot attention and input feeding) and the
// transformer; teacher-forced training, greedy and beam decoding, attention recording, model
// files, and evaluation (exact match, BLEU-4, alignment AER).
#pragma once
#include <attnviz/analysis/alignment.hpp>
#include <attnviz/analysis/bleu.hpp>
#include <attnviz/data/corpus.hpp>
#include <attnviz/engine/nn.hpp>
#include <attnviz/models/model.hpp>
#include <attnviz/record/record.hpp>
#include <attnviz/analysis/statistical_aligner.hpp>
#include <attnviz/text/bpe.hpp>
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
  // rnn: weight lambda_g of the guided-alignment loss (Chen et al. 2016, "Guided Alignment Training
  // for Topic-Aware Neural Machine Translation"; Garg et al. 2019): lambda_g / G * sum over the
  // guided target rows (b, t) of the cross-entropy -sum_i g_bti log a_bti between the link
  // distribution g (the row's links in Example::guide, each 1/links) and the attention a; G = guided
  // rows in the batch. 0 = off; examples without links add nothing.
  float guide = 0.f;
  // Byte-pair merges learned per side when the model was trained (--bpe N; 0 = word vocabularies).
  // The merges themselves are Translator::src_bpe / tgt_bpe.
  int bpe = 0;
  TokenizerOptions tokenizer;   // how raw text (--text, TSV) is tokenized for this model
  bool pretokenized = false;

  std::string to_json() const;
  // Throws InputError(path, ...) on a missing key, a bad value or implausible sizes.
  static TranslatorConfig from_json(const std::string& json, const std::string& path);
};

// Token ids without <bos>/<eos> (the models add them); guide: links (source token, target token)
// the guided-alignment loss trains the attention towards (empty = none).
struct Example {
  std::vector<int> src, tgt;
  Alignment guide;
};

inline constexpr float kDefaultAdditiveCoverage = 0.05f;
// Weight of the guided-alignment loss in the default recipe of `train translate` (rnn), whose
// links come from the built-in aligner at its defaults (StatAlignOptions: diagonal tension 4).
inline constexpr float kDefaultGuideWeight = 1.f;

struct BatchResult {
  double loss = 0;    // mean cross-entropy per target token
  int tokens = 0;     // target tokens counted (incl. <eos>)
  int correct = 0;    // argmax == target
  double penalty = 0; // coverage penalty (already divided by the target tokens); loss + penalty is minimised
  double guide = 0;   // guided-alignment loss (already weighted and divided by the guided rows); minimised too
};

// Kind "translator"; the file keeps both vocabularies ("src_vocab", "tgt_vocab") besides the config.
// Parameter tables: seq2seq.cpp (rnn) and transformer_mt.cpp (transformer).
class Translator : public Model {
 public:
  TranslatorConfig config;
  Vocabulary src_vocab, tgt_vocab;
  Bpe src_bpe, tgt_bpe;   // subword merges (none: words are tokens); stored as "src_bpe" / "tgt_bpe"

  // Words -> token ids: BPE pieces when the model has merges, then the vocabulary.
  std::vector<int> encode_source(const std::vector<std::string>& words) const;
  std::vector<int> encode_target(const std::vector<std::string>& words) const;
  bool subwords() const { return !src_bpe.empty() || !tgt_bpe.empty(); }

  std::string kind() const override { return "translator"; }
  std::string config_json() const override { return config.to_json(); }
  std::map<std::string, std::string> file_metadata() const override;

  virtual void init(std::uint64_t seed) = 0;
  // Teacher-forced forward over a batch without caching for backward: logits [B*T, V], row b*T + t
  // predicting target token t (T = longest target + <eos>). sink (optional) receives every attention
  // tensor [B, H, Nq, Nk]: "decoder.layer{l}.cross", and for the transformer "encoder.layer{l}.self",
  // "decoder.layer{l}.self". Without a sink no weights are computed.
  virtual Mat forward(const std::vector<const Example*>& batch, AttentionSink* sink = nullptr) = 0;
  // Teacher-forced forward + backward over a batch; adds into the parameter gradients.
  // dropout_rng: nullptr = no dropout.
  virtual BatchResult train_batch(const std::vector<const Example*>& batch, nn::Rng* dropout_rng) = 0;

  // Relevance maps of Chefer, Gur & Wolf (ICCV 2021, "Generic Attention-model Explainability for
  // Interpreting Bi-Modal and Encoder-Decoder Transformers"; analysis::encoder_decoder_relevance)
  // for a teacher-forced batch. The output explained at target step t is the logit of the batch's
  // target token at t (y_t, <eos> after the last one): row t of every map comes from its own
  // gradients. Per sentence: "decoder.relevance_cross" [1, T+1, S+1] (R^ts, target -> source),
  // "decoder.relevance_self" [1, T+1, T+1] (R^tt over the decoder inputs <bos> y_1 ..), both with
  // Ā = mean_h (grad ⊙ A)^+ of the attention weights (their eq. 5), and "decoder.lrp_relevance_cross"
  // / "_self", the same rules with the LRP relevance of each map (nn::lrp_decoder_block /
  // lrp_encoder_block, Chefer et al. CVPR 2021) in place of the weights. The transformer only:
  // the RNN throws InputError.
  virtual std::vector<std::vector<AttentionTensor>> relevance(const std::vector<const Example*>& batch);

  // Step-by-step decoding over R rows (sentences or beam hypotheses).
  struct State {
    virtual ~State() = default;
  };
  virtual std::unique_ptr<State> start(const std::vector<std::vector<int>>& src) = 0;  // one row per sentence
  virtual void select(State& state, const std::vector<int>& rows) = 0;                // keep/duplicate rows
  virtual Mat step(State& state, const std::vector<int>& prev) = 0;                   // log-probs [R, V]

  // Teacher-forced run on (src, tgt) that records attention (forward with a collector):
  // "decoder.layerL.cross" [H, T+1, S+1] (rows: target tokens + <eos>, columns: source tokens +
  // <eos>), and for the transformer "encoder.layerL.self" and "decoder.layerL.self" too; with
  // what.norms the transformer adds "<name>.norm" and "<name>.norm_sum" after each of them, with
  // what.mixing "encoder.layerL.self.mixing" (value zeroing) after each encoder layer, with
  // what.relevance the four relevance() maps at the end.
  AttentionRecord record(const std::vector<int>& src, const std::vector<int>& tgt, const RecordOptions& what = {});

  std::string attention_kind() const;   // "additive", ..., or "scaled-dot" for the transformer
  std::string name() const;             // "rnn-additive", "transformer-L2-H4"
};

std::unique_ptr<Translator> make_translator(const TranslatorConfig& config, Vocabulary src, Vocabulary tgt);

// ---- files -----------------------------------------------------------------------------------

// Model files (model_file.hpp): save_model + extra metadata; load_translator = load_model that
// refuses any other kind with a message naming it. Old-release translate files load too.
void save_translator(const std::filesystem::path& path, const Translator& model,
                     const std::map<std::string, std::string>& extra = {});
std::unique_ptr<Translator> load_translator(const std::filesystem::path& path);

// ---- data ------------------------------------------------------------------------------------

std::vector<Example> encode_corpus(const Translator& model, const ParallelCorpus& corpus);

// Word links -> links between the model's tokens: every piece of source word i with every piece
// of target word j (identity without BPE).
Alignment links_to_pieces(const Translator& model, const SentencePair& words, const Alignment& links);

// Guided alignment's targets: the built-in statistical aligner (statistical_aligner.hpp) trained on
// `corpus` (word level), its links mapped to the model's tokens into data[k].guide (data =
// encode_corpus(model, corpus)). Returns the links per pair (word level).
std::vector<Alignment> attach_guide(const Translator& model, const ParallelCorpus& corpus, std::vector<Example>& data,
                                    const StatAlignOptions& opt);
std::vector<std::string> tokenize_for(const TranslatorConfig& config, const std::string& text);

// ---- training --------------------------------------------------------------------------------

// Batches of one epoch: shuffled by (seed, epoch), grouped by similar source length.
std::vector<std::vector<const Example*>> make_batches(const std::vector<Example>& data, int batch_size,
                                                      std::uint64_t seed, int epoch);

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
                                   const std::vector<std::string>* target_words = nullptr,
                                   const RecordOptions& what = {});

// ---- evaluation ------------------------------------------------------------------------------

struct EvalOptions {
  int beam = 1;                   // 1 = greedy (batched)
  float length_penalty = 1.0f;
  AlignOptions align;             // how alignments are extracted from attention
  int batch = 64;
  // A model of the opposite direction (target -> source): with gold, each pair's alignment is the
  // two models' attention symmetrized (symmetrize_attention, layer by layer; the reverse model's
  // last layer when it has fewer). Translation scores stay the forward model's.
  Translator* reverse = nullptr;
  Symmetrize symmetrize = Symmetrize::GrowDiagFinalAnd;
  Combine combine = Combine::Product;
  // With gold: also score Translator::relevance()'s "decoder.relevance_cross" and
  // "decoder.lrp_relevance_cross" (the transformer only; InputError otherwise).
  bool relevance = false;
  // With gold: also score each decoder layer's value-zeroing cross map "decoder.layerN.cross.mixing"
  // (Mohebbi et al. 2023; Translator::record with RecordOptions::mixing; the transformer only,
  // InputError otherwise).
  bool mixing = false;
};

struct LayerAlignment {
  std::string tensor;             // "decoder.layer0.cross" (mean over heads)
  AlignmentScore score;
};

// Named metrics: "exact_match", "bleu", and per decoder layer "aer.<tensor>", "precision.<tensor>",
// "recall.<tensor>" when the corpus has gold alignments. The alignment rows: every layer's
// cross-attention, then (opt.mixing) every layer's cross mixing map, then (opt.relevance) the two
// relevance maps.
struct TranslationEval : EvalResult {
  int sentences = 0;
  int exact = 0;                  // hypothesis == reference (token for token)
  BleuScore bleu;
  std::vector<LayerAlignment> alignment;   // one per decoder layer; empty without gold
  double seconds = 0;
  std::vector<std::vector<std::string>> hypotheses;
};

TranslationEval evaluate_translator(Translator& model, const ParallelCorpus& corpus, const EvalOptions& opt);

}  // namespace attnviz::models
