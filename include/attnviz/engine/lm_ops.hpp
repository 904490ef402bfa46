// Inference kernels of decoder-only language models: rotary position embedding (RoPE), RMSNorm,
// LayerNorm without a cache, SwiGLU and tanh-GELU activations, and the single-query attention step
// that generation runs against a KV cache (grouped-query heads read their shared K/V in place).
#pragma once
#include <attnviz/tensor.hpp>

#include <vector>

namespace attnviz::nn {

// Which elements RoPE rotates together. Adjacent: (2i, 2i+1) — ggml's "normal" mode, the layout
// of llama-architecture GGUF files (llama.cpp's converter permutes Hugging Face's Q/K rows into it)
// and of llama2.c. Halves: (i, i + Dh/2) — GPT-NeoX / Hugging Face rotate_half.
enum class RopeStyle { Adjacent, Halves };

struct RopeOptions {
  int head_dim = 64;        // Dh (even)
  double base = 10000.0;    // theta_i = pos / scale * base^(-2i/Dh), i < Dh/2
  double scale = 1.0;       // linear position scaling ("rope.scaling.type" linear: positions / factor)
  RopeStyle style = RopeStyle::Adjacent;
};

// The rotation angle of pair i (< Dh/2) at a position: theta = (position / scale) * base^(-2i / Dh),
// in double. RopeTable and the LRP backward of LmRelevance (src/models/lm_relevance.cpp) share it.
double rope_angle(const RopeOptions& opt, int position, int pair);

// cos/sin of every (position, pair) up to a maximum position, computed in double once.
class RopeTable {
 public:
  RopeTable() = default;
  RopeTable(const RopeOptions& opt, int max_positions);
  const RopeOptions& options() const { return opt_; }
  int max_positions() const { return max_pos_; }
  // Rotates rows of x in place: row r holds `heads` heads of Dh values (row stride ld floats) at
  // position pos0 + r. x: [rows, >= heads*Dh]. Throws std::out_of_range past max_positions().
  void apply(float* x, int rows, int heads, int ld, int pos0) const;

 private:
  RopeOptions opt_;
  int max_pos_ = 0;
  std::vector<float> cos_, sin_;   // [max_pos, Dh/2]
};

// y = x / sqrt(mean(x^2) + eps) * gamma, per row. x, y: [N, D]; gamma: [D]. y may alias x.
void rms_norm_rows(const Mat& x, const float* gamma, float eps, Mat& y);
// y = (x - mean) / sqrt(var + eps) * gamma + beta, per row (no backward cache). y may alias x.
void layer_norm_rows(const Mat& x, const float* gamma, const float* beta, float eps, Mat& y);
// gate = silu(gate) * up = gate / (1 + e^-gate) * up (SwiGLU). gate, up: [N, F].
void swiglu_inplace(Mat& gate, const Mat& up);
// x = x * 0.5 * (1 + erf(x / sqrt(2))) (BERT's and ViT's "gelu"), without a backward cache.
void gelu_erf_inplace(Mat& x);
// y (row stride ldy floats) = x w^T (+ b). x: [T, in], w: [out, in] (torch layout), b: [1, out] or null.
// Threads split the rows of x when there are many, else the output columns; the split depends only
// on the shape, so results are deterministic for a thread count.
void linear_rows(const Mat& x, const Mat& w, const Mat* b, float* y, int ldy, int threads);
// x = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (GPT-2's "gelu_new").
void gelu_tanh_inplace(Mat& x);

// One query row per head against Nk cached keys (no mask: every cached key is visible).
struct DecodeShape {
  int H = 1, Hkv = 1, Dh = 64, Nk = 1;
  int ldk = 0, ldv = 0;   // row strides of the K/V caches in floats (0 = Hkv*Dh)
};
// q: [H*Dh], k/v: [Nk, ldk/ldv] (head g of a row at columns g*Dh..), out: [H*Dh].
// scores: caller-owned scratch of at least H*Nk floats (no allocation here).
// weights (optional, may be null): [H, Nk] exact normalized weights.
// OpenMP over heads when the step is large enough to pay for the fork.
void attention_decode(const float* q, const float* k, const float* v, float* out, const DecodeShape& s,
                      float scale, float* scores, float* weights, int threads = 0);

}  // namespace attnviz::nn
