// Composite layers: pre-LayerNorm transformer encoder and decoder blocks, the GRU cell (usable
// step by step, the caller doing BPTT) and a bidirectional GRU encoder with padding.
#pragma once
#include <attnviz/engine/attention.hpp>
#include <attnviz/engine/layers.hpp>

namespace attnviz::nn {

enum class Activation { Gelu, Relu };

struct EncoderBlockOptions {
  int dim = 64, heads = 4, mlp_hidden = 128;
  float dropout = 0.f;                  // after attention and after the MLP (training only)
  Activation activation = Activation::Gelu;
  Score score = Score::ScaledDot;       // ScaledDot or Dot
  int dense_max_keys = 0;               // MultiHeadAttentionOptions::dense_max_keys
  bool post_norm = false;               // BERT's order: LayerNorm after each residual add (below)
};

// Pre-LN encoder block (as in ViT):  h = x + Drop(MHA(LN1(x)));  y = h + Drop(FC2(act(FC1(LN2(h))))).
// With post_norm (BERT):             h = LN1(x + Drop(MHA(x)));  y = LN2(h + Drop(FC2(act(FC1(h))))).
// Names: "<prefix>.ln1", ".attn", ".ln2", ".fc1", ".fc2".
struct EncoderBlock {
  EncoderBlockOptions opt;
  LayerNorm ln1, ln2;
  MultiHeadAttention attn;
  Linear fc1, fc2;
  Gelu gelu;
  Relu relu;
  Dropout drop1, drop2;

  EncoderBlock() = default;
  explicit EncoderBlock(const EncoderBlockOptions& opt);
  void init(Rng& rng);
  void collect(ParamSet& set, const std::string& prefix);
  // x: [B*T, D] -> [B*T, D]. dropout_rng: nullptr = evaluation (no dropout); weights: [B, H, T, T].
  Mat forward(const Mat& x, int B, int T, const AttnMask& mask = {},
              AttentionWeights* weights = nullptr, Rng* dropout_rng = nullptr);
  // dweights (optional): d(loss)/d(attention weights) [B, H, T, T] (MultiHeadAttention::backward).
  Mat backward(const Mat& dy, AttentionWeights* dweights = nullptr);

  // Pre-LN blocks only (std::logic_error with post_norm). The output at one row of each sequence only (a classifier's CLS token after the last block):
  // x [B*T, D] -> rows b*T + row of forward(x) [B, D]. Keys and values still come from all T rows;
  // the query, attention output, residual and MLP run on the B rows alone (the other outputs would
  // not reach the loss). The same numbers as forward's rows up to float rounding (the query
  // projection is a product of its own).
  Mat forward_row(const Mat& x, int B, int T, int row, const AttnMask& mask = {}, Rng* dropout_rng = nullptr);
  // After forward_row: dy [B, D] -> dx [B*T, D].
  Mat backward_row(const Mat& dy);

 private:
  int row_ = -1, row_B_ = 0, row_T_ = 0;   // forward_row's row and shape
};

struct DecoderBlockOptions {
  int dim = 64, heads = 4, mlp_hidden = 128;
  int memory_dim = 0;                   // width of the encoder output (0 = dim)
  float dropout = 0.f;
  Activation activation = Activation::Gelu;
  Score score = Score::ScaledDot;
};

struct DecoderWeights {              // optional recording sinks
  AttentionWeights* self = nullptr;  // [B, H, T, T]
  AttentionWeights* cross = nullptr; // [B, H, T, S]
};

// Pre-LN decoder block: causal self-attention, cross-attention over the encoder memory, MLP.
//   h1 = y + Drop(SelfMHA(LN1(y)));  h2 = h1 + Drop(CrossMHA(LN2(h1), memory));
//   out = h2 + Drop(FC2(act(FC1(LN3(h2))))).
// Names: "<prefix>.ln1", ".self", ".ln2", ".cross", ".ln3", ".fc1", ".fc2".
struct DecoderBlock {
  DecoderBlockOptions opt;
  LayerNorm ln1, ln2, ln3;
  MultiHeadAttention self_attn, cross_attn;
  Linear fc1, fc2;
  Gelu gelu;
  Relu relu;
  Dropout drop1, drop2, drop3;

  DecoderBlock() = default;
  explicit DecoderBlock(const DecoderBlockOptions& opt);
  void init(Rng& rng);
  void collect(ParamSet& set, const std::string& prefix);
  // y: [B*T, D], memory: [B*S, memory_dim]. self_mask: target key lengths (causal is always on);
  // cross_mask: source key lengths. Returns [B*T, D].
  Mat forward(const Mat& y, const Mat& memory, int B, int T, int S, const AttnMask& self_mask,
              const AttnMask& cross_mask, DecoderWeights weights = {}, Rng* dropout_rng = nullptr);
  // Returns dy; sets dmemory [B*S, memory_dim] (sum it over layers yourself). dweights (optional
  // sinks): d(loss)/d(attention weights) of the self-attention [B, H, T, T] and of the
  // cross-attention [B, H, T, S] (MultiHeadAttention::backward: total derivatives, 0 on hidden keys).
  Mat backward(const Mat& dout, Mat& dmemory, DecoderWeights dweights = {});
};

// GRU cell, PyTorch gate order (r, z, n):
//   r = sigma(x Wx_r + bx_r + h Wh_r + bh_r),  z = sigma(x Wx_z + bx_z + h Wh_z + bh_z),
//   n = tanh(x Wx_n + bx_n + r * (h Wh_n + bh_n)),  h' = (1 - z) * n + z * h.
// Wx: [In, 3H], Wh: [H, 3H], bx, bh: [1, 3H] (columns r | z | n).
// Names: "<prefix>.wx", ".wh", ".bx", ".bh".
// Step-by-step use: gx = project_inputs(x_all) once ([B*T, 3H], one GEMM for all steps), then
// step(gx_t, h, &cache_t) per step; backward in reverse: backward_step(cache_t, dh, dgx_t) per
// step, then backward_inputs(x_all, dgx_all) once.
struct GruCell {
  struct Cache {
    Mat h;        // [B, H] previous state
    Mat r, z, n;  // [B, H]
    Mat hn;       // [B, H] h Wh_n + bh_n
  };
  Param wx, wh, bx, bh;

  GruCell() = default;
  GruCell(int input, int hidden);
  int input() const { return static_cast<int>(wx.value.rows()); }
  int hidden() const { return static_cast<int>(wh.value.rows()); }
  void init(Rng& rng);   // U(-1/sqrt(H), 1/sqrt(H)) like PyTorch
  void collect(ParamSet& set, const std::string& prefix);
  Mat project_inputs(const Mat& x) const;                       // x: [N, In] -> [N, 3H]
  Mat step(const Mat& gx, const Mat& h, Cache* cache) const;    // gx: [B, 3H], h: [B, H] -> h' [B, H]
  // dh: d(loss)/d(h') [B, H]. Sets dgx [B, 3H]; adds into wh/bh grads; returns d(loss)/d(h) [B, H].
  Mat backward_step(const Cache& cache, const Mat& dh, Mat& dgx);
  // Adds into wx/bx grads; returns dx [N, In]. x: [N, In], dgx: [N, 3H].
  Mat backward_inputs(const Mat& x, const Mat& dgx);
};

// Bidirectional GRU over padded sequences. Output row b*T+t is [h_fwd_t | h_bwd_t] ([B*T, 2H]);
// rows t >= lengths[b] are zero. final_state(): [B, 2H] = [h_fwd at the last valid step | h_bwd at t=0].
// Names: "<prefix>.fwd.*", "<prefix>.bwd.*".
struct BiGruEncoder {
  GruCell fwd, bwd;
  // cache
  int B_ = 0, T_ = 0;
  std::vector<int> lengths_;
  Mat x_, gxf_, gxb_;
  std::vector<GruCell::Cache> cf_, cb_;   // [T] per direction
  Mat final_;

  BiGruEncoder() = default;
  BiGruEncoder(int input, int hidden);
  int hidden() const { return fwd.hidden(); }
  void init(Rng& rng);
  void collect(ParamSet& set, const std::string& prefix);
  Mat forward(const Mat& x, int B, int T, const std::vector<int>& lengths = {});
  const Mat& final_state() const { return final_; }
  // dout: [B*T, 2H]; dfinal: [B, 2H] or empty. Returns dx [B*T, In].
  Mat backward(const Mat& dout, const Mat& dfinal = Mat());
};

}  // namespace attnviz::nn
