// Attention: scoring functions (scaled-dot, dot, general, additive), masks, the blocked
// online-softmax kernel and its naive reference, multi-head self/cross attention, single-query
// ("step") attention for RNN decoders, and attention pooling.
#pragma once
#include <attnviz/engine/layers.hpp>
#include <attnviz/record/record.hpp>

#include <string>
#include <vector>

namespace attnviz::nn {

// scaled-dot: q.k / sqrt(d) (Vaswani et al. 2017); dot: q.k (Luong "dot");
// general: q W k^T (Luong "general"); additive: v^T tanh(W q + U k + b) (Bahdanau et al. 2015).
enum class Score { ScaledDot, Dot, General, Additive };
const char* score_name(Score s);                 // "scaled-dot", "dot", "general", "additive"
Score parse_score(const std::string& name);      // throws UsageError on anything else

// Which keys a query may see. Padding is at the end of each sequence.
// A query that sees no key gets zero weights and a zero output (never NaN).
struct AttnMask {
  std::vector<int> key_lengths;   // [B]: keys >= key_lengths[b] are padding; empty = all valid
  bool causal = false;            // query i sees keys j <= i only
};

// Attention weights a layer hands out when asked (recording never changes the numbers computed).
struct AttentionWeights {
  int B = 0, H = 0, Nq = 0, Nk = 0;
  std::vector<float> data;   // [B, H, Nq, Nk]
  void resize(int B, int H, int Nq, int Nk);
  float* at(int b, int h) { return data.data() + (static_cast<size_t>(b) * H + h) * Nq * Nk; }
  const float* at(int b, int h) const { return data.data() + (static_cast<size_t>(b) * H + h) * Nq * Nk; }
  // Sequence b as a record tensor [H, nq, nk], cropped to the first nq queries / nk keys
  // (-1 = all), e.g. to drop padding: weights.tensor(0, "encoder.layer0.self", "src", "src", 7, 7).
  AttentionTensor tensor(int b, const std::string& name, const std::string& query_axis = "",
                         const std::string& key_axis = "", int nq = -1, int nk = -1) const;
};

// ---------------------------------------------------------------------------------------------
// The kernel: scaled-dot / dot attention on many (batch, head) pairs at once.
// Heads sit side by side in columns, as a projection produces them: head h of row r is
// columns h*Dh .. h*Dh+Dh-1. Row strides default to H*Dh.
struct KernelShape {
  int B = 1, H = 1, Nq = 1, Nk = 1, Dh = 64;
  int ldq = 0, ldk = 0, ldv = 0, ldo = 0;   // row strides in floats (0 = H*Dh; K/V: Hkv*Dh)
  // Grouped-query attention: K/V have kv_heads heads (0 = H); query head h reads K/V head
  // h / (H / kv_heads) in place, nothing is copied. H must be a multiple of kv_heads.
  int kv_heads = 0;
};

struct KernelOptions {
  float scale = 1.f;                   // 1/sqrt(Dh) for scaled-dot, 1 for dot
  const int* key_lengths = nullptr;    // [B] or nullptr (all keys valid)
  bool causal = false;
  float* weights = nullptr;            // optional out [B, H, Nq, Nk]: exact normalized weights
  float* lse = nullptr;                // optional out [B, H, Nq]: log-sum-exp of the scaled logits
                                       // (-inf for a query with no visible key); backward needs it
  int threads = 0;                     // 0 = nn::threads()
  int q_tile = 0, k_tile = 0;          // 0 = defaults chosen for the cache (see attention_kernel.cpp)
};

// q: [B*Nq, ldq], k: [B*Nk, ldk], v: [B*Nk, ldv] -> out: [B*Nq, ldo] (only head columns written).
// Query tiles x key tiles with an online softmax; OpenMP over (batch, head, query tile);
// extra memory O(threads * tile * Dh) unless weights are requested (then a second pass writes them).
void attention_blocked(const float* q, const float* k, const float* v, float* out,
                       const KernelShape& shape, const KernelOptions& opt);
// Reference: full [Nq, Nk] logits per (batch, head), two-pass softmax, plain loops. Same contract.
void attention_naive(const float* q, const float* k, const float* v, float* out,
                     const KernelShape& shape, const KernelOptions& opt);
// Gradients of attention_blocked/naive. Needs the forward's out and lse. dq, dk, dv are
// overwritten (same layouts as q, k, v). Parallel over (batch, head); no shared accumulation.
void attention_backward(const float* q, const float* k, const float* v, const float* out,
                        const float* dout, const float* lse, float* dq, float* dk, float* dv,
                        const KernelShape& shape, const KernelOptions& opt);
// Peak extra bytes attention_blocked allocates for `shape` (without the weights output).
size_t attention_blocked_workspace_bytes(const KernelShape& shape, const KernelOptions& opt);
// The instruction set the kernels above run on: "avx512", "avx2", "sse4", "ssse3" or "portable".
// Chosen at the first call: the widest the CPU supports, unless the environment variable
// ATTNVIZ_ISA (best | avx512 | avx2 | sse4 | portable) or set_kernel_isa() rules wider ones out.
std::string kernel_isa();
// Rule out ISAs wider than `isa` (same names; "best" = none); UsageError on any other name.
void set_kernel_isa(const std::string& isa);

// ---------------------------------------------------------------------------------------------
struct MultiHeadAttentionOptions {
  int dim = 64;       // D (model width; queries and output)
  int heads = 4;      // H; Dh = D / H
  int kv_dim = 0;     // width of the key/value input for cross-attention (0 = dim)
  Score score = Score::ScaledDot;   // ScaledDot or Dot (others: use ScoredAttention)
  bool bias = true;
  // Short sequences: when Nk <= dense_max_keys, each (batch, head) computes its full [Nq, Nk]
  // weights with two small GEMMs and keeps them for backward (no log-sum-exp recomputation, no
  // second weights pass when recording). Same contract and masks as the blocked kernel. The MNIST
  // ViT (T = 50) trains faster this way; 0 = always the blocked kernel.
  int dense_max_keys = 0;
};

// Multi-head attention: projections wq, wk, wv (split into heads by columns), the kernel, wo.
// Names: "<prefix>.wq", ".wk", ".wv", ".wo" (each with .weight/.bias).
struct MultiHeadAttention {
  MultiHeadAttentionOptions opt;
  Linear wq, wk, wv, wo;
  // cache
  int B_ = 0, Nq_ = 0, Nk_ = 0;
  bool self_ = true;
  AttnMask mask_;
  // Projections. Self-attention: one GEMM x [wq | wk | wv] into qp_ [B*T, 3D] (q | k | v side by
  // side, a wider product than three), kvp_ empty, x_ the input. Cross: qp_ [B*Nq, D], kvp_
  // [B*Nk, 2D] (k | v); the inputs are wq.x_ and wk.x_. Read them through q(), k(), v(), xq(), xkv().
  Mat qp_, kvp_, x_, ctx_;   // ctx_: [B*Nq, D]
  std::vector<float> lse_;  // [B, H, Nq] (blocked kernel)
  bool dense_ = false;      // the last forward took the dense path
  Mat dense_w_;             // dense path: weights [B*H*Nq, Nk]

  using ConstStrided = Eigen::Map<const Mat, 0, Eigen::OuterStride<>>;
  // The last forward's projections, head h = columns h*Dh .. (row strides: see qp_ / kvp_).
  ConstStrided q() const { return {qp_.data(), qp_.rows(), opt.dim, Eigen::OuterStride<>(qp_.cols())}; }
  ConstStrided k() const { return kv_part(0); }
  ConstStrided v() const { return kv_part(1); }
  const Mat& xq() const { return self_ ? x_ : wq.x_; }    // the query input of the last forward
  const Mat& xkv() const { return self_ ? x_ : wk.x_; }   // the key/value input

  MultiHeadAttention() = default;
  explicit MultiHeadAttention(const MultiHeadAttentionOptions& opt);
  void init(Rng& rng);
  void collect(ParamSet& set, const std::string& prefix);
  // Self-attention: x [B*T, D] -> [B*T, D]. weights (optional): filled [B, H, T, T].
  Mat forward(const Mat& x, int B, int T, const AttnMask& mask = {},
              AttentionWeights* weights = nullptr);
  Mat forward(Mat&& x, int B, int T, const AttnMask& mask = {}, AttentionWeights* weights = nullptr);  // keeps x uncopied
  // Cross-attention: xq [B*Nq, D], xkv [B*Nk, kv_dim] -> [B*Nq, D]; weights [B, H, Nq, Nk].
  Mat forward(const Mat& xq, const Mat& xkv, int B, int Nq, int Nk, const AttnMask& mask = {},
              AttentionWeights* weights = nullptr);
  // After a self forward: dx [B*T, D]. After a cross forward: returns dxq, sets dxkv.
  // dweights (optional): filled [B, H, Nq, Nk] with d(loss)/d(weights), the gradient with respect
  // to the normalized attention weights (what grad-rollout and attention x gradient saliency use):
  // ctx_h = A_h v_h, so dA_h = dctx_h v_h^T; 0 where the mask hides the key.
  Mat backward(const Mat& dy, AttentionWeights* dweights = nullptr);
  Mat backward(const Mat& dy, Mat& dxkv, AttentionWeights* dweights = nullptr);

 private:
  ConstStrided kv_part(int which) const {   // 0 = k, 1 = v
    const Mat& m = self_ ? qp_ : kvp_;
    const Eigen::Index off = static_cast<Eigen::Index>(self_ ? which + 1 : which) * opt.dim;
    return {m.data() + off, m.rows(), opt.dim, Eigen::OuterStride<>(m.cols())};
  }
  Mat attend(int B, int Nq, int Nk, AttentionWeights* weights);
  Mat backward_impl(const Mat& dy, Mat* dxkv, AttentionWeights* dweights);
  void dense_forward(const KernelOptions& ko);
  // dq, dk, dv: row-major with row strides ldq, ldkv (the layouts of q() and k()/v()).
  void dense_backward(const Mat& dctx, float* dq, float* dk, float* dv, Eigen::Index ldq, Eigen::Index ldkv) const;
};

// ---------------------------------------------------------------------------------------------
struct ScoredAttentionOptions {
  Score score = Score::Additive;
  int query_dim = 64;   // Dq (decoder state)
  int key_dim = 64;     // Dk (encoder state); dot/scaled-dot need Dq == Dk
  int hidden = 64;      // A: additive's hidden width
};

// Single-head attention with any scoring function, for RNN seq2seq (Bahdanau/Luong): the keys
// are also the values (the encoder states), context = softmax(score(q, keys)) . keys.
// Use: set_keys() once per batch, forward() at each decoder step (Nq = 1, q: [B, Dq]) with its own
// Cache, then backward() for each step in any order, then keys_backward() once for d(keys).
// Parameters: general "<prefix>.W" [Dq, Dk]; additive "<prefix>.W" [Dq, A], ".U" [Dk, A],
// ".b" [1, A], ".v" [1, A]; dot / scaled-dot have none.
struct ScoredAttention {
  struct Cache {
    int Nq = 0;
    Mat q;        // [B*Nq, Dq]
    Mat w;        // [B*Nq, S] normalized weights (0 on masked keys)
    Mat qk;       // general: q W [B*Nq, Dk]; additive: tanh(W q + U k + b) [B*Nq*S, A]
  };

  ScoredAttentionOptions opt;
  Param W, U, b, v;
  // keys state (set_keys)
  int B_ = 0, S_ = 0;
  std::vector<int> lengths_;   // [B] (filled with S when none given)
  Mat keys_;                   // [B*S, Dk]
  Mat uk_;                     // additive: keys U [B*S, A]
  Mat dkeys_, duk_;            // accumulated by backward(): [B*S, Dk], [B*S, A]

  ScoredAttention() = default;
  explicit ScoredAttention(const ScoredAttentionOptions& opt);
  void init(Rng& rng);
  void collect(ParamSet& set, const std::string& prefix);
  // keys: [B*S, Dk]; key_lengths [B] (empty = all S valid). Resets the d(keys) accumulator.
  void set_keys(const Mat& keys, int B, int S, const std::vector<int>& key_lengths = {});
  // q: [B*Nq, Dq] -> context [B*Nq, Dk]. weights (optional): [B, 1, Nq, S].
  Mat forward(const Mat& q, int Nq, Cache& cache, AttentionWeights* weights = nullptr) const;
  // dctx: [B*Nq, Dk] -> dq [B*Nq, Dq]; adds into param grads and the d(keys) accumulator.
  // dweights (optional): [B*Nq, S], the gradient of a loss on the weights themselves (e.g. a
  // coverage penalty), added to the one coming through the context before the softmax backward.
  Mat backward(const Mat& dctx, const Cache& cache, const Mat* dweights = nullptr);
  // d(keys) [B*S, Dk] summed over every backward() since set_keys (values and scores paths).
  Mat keys_backward();
};

// ---------------------------------------------------------------------------------------------
struct AttentionPoolingOptions {
  int dim = 64;                     // D
  Score score = Score::Additive;    // additive: s_t = v^T tanh(U x_t + W q + b) with a learned q;
                                    // scaled-dot: s_t = q . x_t / sqrt(D)
  int hidden = 64;                  // A (additive)
};

// One learned query attending over each sequence: x [B*T, D] -> pooled [B, D] (a classifier's
// pooling head). Names: "<prefix>.query" [1, D], "<prefix>.attn.*" (ScoredAttention params).
struct AttentionPooling {
  AttentionPoolingOptions opt;
  Param query;
  ScoredAttention attn;
  ScoredAttention::Cache cache_;

  AttentionPooling() = default;
  explicit AttentionPooling(const AttentionPoolingOptions& opt);
  void init(Rng& rng);
  void collect(ParamSet& set, const std::string& prefix);
  // lengths [B] (empty = all T valid); weights (optional): [B, 1, 1, T].
  Mat forward(const Mat& x, int B, int T, const std::vector<int>& lengths = {},
              AttentionWeights* weights = nullptr);
  Mat backward(const Mat& dy);   // dy [B, D] -> dx [B*T, D]
};

}  // namespace attnviz::nn
