// Decoder-only language models (llama and gpt2 families) on the model contract: config, the table
// of checkpoint tensor names, the forward pass on the engine's kernels with a KV cache, sampling,
// and loaders from GGUF files and minGPT JSON checkpoints.
#pragma once
#include <attnviz/engine/lm_ops.hpp>
#include <attnviz/engine/rng.hpp>
#include <attnviz/models/model.hpp>
#include <attnviz/record/record.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace attnviz {
class LmTokenizer;   // text/lm_tokenizer.hpp
}

namespace attnviz::models {

enum class LmArch { Llama, Gpt2 };
const char* lm_arch_name(LmArch a);   // "llama", "gpt2"

// Everything that fixes the shapes and the arithmetic of one model.
struct LmConfig {
  LmArch arch = LmArch::Llama;
  std::string name;        // for records and messages ("stories260K")
  int layers = 0;          // L
  int dim = 0;             // D
  int heads = 0;           // H (query heads)
  int kv_heads = 0;        // Hkv (H for plain multi-head attention; fewer for GQA)
  int head_dim = 0;        // Dh (D / H unless the checkpoint says otherwise)
  int ffn = 0;             // F (MLP width)
  int vocab = 0;           // V
  int context = 0;         // largest sequence the positions support
  float norm_eps = 1e-5f;  // RMSNorm (llama) or LayerNorm (gpt2) epsilon
  double rope_base = 10000.0;   // llama: RoPE theta base
  double rope_scale = 1.0;      // llama: linear RoPE scaling factor (positions are divided by it)
  // llama: which elements RoPE pairs. GGUF files hold Q/K rows permuted for adjacent pairs; Hugging
  // Face checkpoints keep rotate_half's (i, i + Dh/2).
  nn::RopeStyle rope_style = nn::RopeStyle::Adjacent;
  bool tied_output = false;     // output projection = token embedding
  bool qkv_bias = false;        // llama: attn_q/k/v biases (Qwen2 style)

  // Throws InputError(path, reason) when the sizes are inconsistent (heads not dividing, zeros).
  void validate(const std::string& path = "") const;
  std::string to_json() const;
  std::int64_t parameters() const;   // scalars, counting a tied output once
};

// One row of a family's tensor-name table: the checkpoint name (llama.cpp's GGUF names, also our
// parameter names) and the expected row-major shape [rows, cols] (torch's [out, in]; vectors [1, n]).
struct LmTensorSpec {
  std::string name;
  long rows = 0, cols = 0;
  bool optional = false;   // e.g. output.weight when the output is tied
};
// llama: token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v, (biases), attn_output, ffn_norm,
// ffn_gate, ffn_up, ffn_down}, output_norm, output.  gpt2: token_embd, position_embd,
// blk.N.{attn_norm(+bias), attn_qkv(+bias), attn_output(+bias), ffn_norm(+bias), ffn_up(+bias),
// ffn_down(+bias)}, output_norm(+bias), output.
std::vector<LmTensorSpec> lm_tensor_table(const LmConfig& cfg);

// Bytes of one record holding every layer x head weights over T tokens: L * H * T * T * 4 (with
// norms L * (2H + 1) * T * T * 4: each layer's .norm and .norm_sum too; with mixing one more
// [T, T] per layer and the rollout).
std::uint64_t lm_record_bytes(const LmConfig& cfg, int T, bool norms = false, bool mixing = false);
// Throws UsageError naming the size and the limit when lm_record_bytes > max_mib MiB.
void check_record_size(const LmConfig& cfg, int T, double max_mib, bool norms = false, bool mixing = false);

// Work buffers + KV cache of one sequence (make with LmModel::new_cache). Reused across steps:
// generation allocates nothing per token.
struct LmCache {
  int capacity = 0;                 // positions the cache holds
  int length = 0;                   // positions already run
  std::vector<Mat> k, v;            // per layer [capacity, Hkv*Dh]
  Mat x, xn, q, qkv, att, proj, gate, up, logits;   // [T, ...] work rows
  std::vector<float> scores;        // decode scratch [H * capacity]
  std::vector<nn::AttentionWeights> w;   // per layer, reused when the sink leaves them in place
  std::vector<std::vector<double>> gram; // per layer [capacity, H, H]: Gram matrices of the transformed
                                         // values, filled only for a sink that wants_norms()
};

struct LmForwardOptions {
  bool all_logits = false;             // logits of every new position (default: the last only)
  std::vector<Mat>* block_outputs = nullptr;   // optional: residual stream after each block [T, D]
  int threads = 0;                     // 0 = nn::threads()
};

class LmModel : public Model {
 public:
  // Zero weights of the right shapes (every table entry that is not optional, plus the output
  // projection when untied); loaders fill them in.
  explicit LmModel(const LmConfig& cfg);
  std::string kind() const override { return lm_arch_name(cfg_.arch); }
  std::string config_json() const override { return cfg_.to_json(); }
  const LmConfig& config() const { return cfg_; }

  // The parameter under its table name; throws std::out_of_range when absent.
  Mat& weight(const std::string& name);
  const Mat& weight(const std::string& name) const;
  // Normal(0, stddev) weights, norms at 1 (benchmarks and tests).
  void init_random(std::uint64_t seed, float stddev = 0.02f);

  LmCache new_cache(int capacity) const;
  // Runs `ids` at positions cache.length .. cache.length + T - 1, appending their K/V to the cache.
  // Returns logits [1, V] of the last position ([T, V] with all_logits). With a sink, every layer's
  // weights go to it as "decoder.layer<L>.self" [1, H, T, cache.length + T] (query_offset = the
  // first new position), preceded by "<name>.norm" [1, H, ...] and "<name>.norm_sum" [1, 1, ...]
  // (nn::norm_attention) when it wants_norms(), and "<name>.mixing" [1, 1, T, cache.length + T] (value
  // zeroing, nn::value_zeroing: each new query row re-runs the MLP half once per key it sees) when it
  // wants_mixing(); without one no weights are computed. Throws UsageError past the capacity
  // or the context, InputError on a token id outside the vocabulary.
  const Mat& forward(const std::vector<int>& ids, LmCache& cache, AttentionSink* sink = nullptr,
                     const LmForwardOptions& opt = {}) const;

  // Floating-point operations of the matrix products of one forward over T new tokens after `past`
  // cached ones (2 per multiply-add; projections, attention and the logits actually computed).
  double matmul_flops(int T, int past, bool all_logits = false) const;

 private:
  LmConfig cfg_;
  std::vector<std::unique_ptr<nn::Param>> owned_;
  nn::RopeTable rope_;
  struct Layer;
  std::vector<std::shared_ptr<Layer>> layers_;
  const Mat* tok_ = nullptr;
  const Mat* pos_ = nullptr;
  const Mat *out_norm_ = nullptr, *out_norm_b_ = nullptr, *output_ = nullptr;
  void bind();
  void layer_forward(int l, int T, int p0, LmCache& c, AttentionSink* sink, int threads) const;
  // Layer l's MLP half on the residual sums x [n, D], in place: x += MLP(norm(x)) (also value zeroing's rest).
  void mlp_residual(int l, Mat& x, Mat& xn, Mat& up, Mat& gate, Mat& proj, int threads) const;
};

// A loaded model, its tokenizer (GGUF files carry one; minGPT has none) and where it came from.
struct LoadedLm {
  std::unique_ptr<LmModel> model;
  std::shared_ptr<const LmTokenizer> tokenizer;   // null when the file has none
  std::string source;   // "gguf" | "mingpt-json" | "hf-gpt2" | "hf-llama" | ...
};

// GGUF (architectures llama and gpt2). Every tensor's shape is checked against the config; the
// message names the tensor, the expected and the found shape. Throws InputError(path, ...).
LoadedLm load_lm_gguf(const std::filesystem::path& path);
// minGPT state dict as JSON (base64 float32, torch [out, in], fused c_attn, *.attn.bias buffers
// ignored). Layers and sizes come from the tensor names and shapes; the head count from the
// file's "config.n_head", else `heads` (> 0), else 3 (minGPT's gpt-nano). Throws InputError.
LoadedLm load_lm_mingpt_json(const std::filesystem::path& path, int heads = 0);
// A Hugging Face directory (config.json model_type gpt2, llama, mistral or qwen2; model.safetensors or
// sharded with model.safetensors.index.json; F32/F16/BF16). Every tensor name and shape is checked
// against config.json before any weight is read; the tokenizer comes from vocab.json + merges.txt or
// tokenizer.json (none: prompts are token ids). Throws InputError naming the file and the tensor.
LoadedLm load_lm_hf(const std::filesystem::path& dir);
// Any of them: a directory is a Hugging Face one; a file is GGUF (magic) or minGPT JSON (an object).
LoadedLm load_lm(const std::filesystem::path& path, int heads = 0);

// Sampling: temperature 0 = greedy (the first maximum); otherwise softmax(logits / temperature)
// restricted to the top_k largest (0 = all), drawn with rng. probs: caller-owned scratch [V].
struct SamplerOptions {
  float temperature = 0.f;
  int top_k = 0;
};
int sample_token(const float* logits, int V, const SamplerOptions& opt, nn::Rng& rng,
                 std::vector<std::pair<float, int>>& scratch);

}  // namespace attnviz::models

namespace attnviz::models {

// Generation: prefill the prompt, then sample `steps` tokens one at a time against the KV cache.
struct GenerateOptions {
  std::vector<int> prompt;         // token ids (BOS included when wanted); at least one
  int steps = 0;                   // tokens to generate (0 = prefill only)
  SamplerOptions sampler;
  std::uint64_t seed = 0;
  bool record = false;             // keep every layer x head weights over all tokens
  bool norms = false;              // with record: also each layer's .norm / .norm_sum (Kobayashi et al. 2020)
  // With record: also each layer's .mixing (value zeroing, Mohebbi et al. 2023) and
  // "decoder.mixing_rollout". Computed per step beside the KV cache: the token at position t re-runs
  // each layer's MLP half t + 1 times, so T tokens cost T(T+1)/2 MLP rows per layer, (T+1)/2 times the
  // MLP work of the generation itself (T is bounded by the context and max_record_mib).
  bool mixing = false;
  double max_record_mib = 2048;    // a record above this is refused before anything is computed
  // with record: "decoder.relevance" [1, T, T], grad-rollout relevance of the earlier tokens for each
  // generated token (record_lm_relevance in models/lm_relevance.hpp; one backward per explained token)
  bool relevance = false;
  int explain_step = 0;            // with relevance: 0 = every generated token, k = only the k-th (1-based)
  std::vector<int> stop_ids;       // generation ends before emitting one of these (EOS, BOS)
  int threads = 0;
  // Run the last generated token through the model too, as a record does for its row: then every
  // generated token costs one decode step (decoded == steps unless a stop id ends the text early),
  // which is what a tokens/s figure divides by (bench lm). Without it the last token comes free and
  // --steps 1 decodes nothing.
  bool forward_last = false;
  // Called for each generated token as soon as it is chosen (prev = the token before it).
  std::function<void(int prev, int id)> on_token;
};

struct GenerateResult {
  std::vector<int> ids;            // prompt + generated
  int prompt_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
  int decoded = 0;                 // forward steps run after the prefill
  double relevance_seconds = 0;    // the relevance's forward + backward passes (relevance only)
  std::optional<AttentionRecord> record;   // "decoder.layer<L>.self" [H, T, T] (then .norm, .norm_sum, .mixing;
                                           // "decoder.mixing_rollout", then "decoder.relevance") + tokens + metadata
};

// tokenizer (may be null) names the record's tokens (display()); without one tokens are the ids.
// Throws UsageError when prompt + steps exceed the context or the record the memory limit.
GenerateResult generate(const LmModel& model, const GenerateOptions& opt, const LmTokenizer* tokenizer = nullptr);

}  // namespace attnviz::models
