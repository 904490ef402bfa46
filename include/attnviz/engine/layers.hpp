// Basic layers, each a forward/backward pair with an owned cache: Linear, LayerNorm, GELU, ReLU,
// Tanh, Embedding, learned positional embedding, patch embedding, Dropout.
//
// Conventions (all layers):
// - Activations are batched row-major: B sequences of length T are one [B*T, D] Mat (sequence b
//   is rows b*T .. b*T+T-1), so every Linear/LayerNorm runs once over the whole batch.
// - forward() caches what backward() needs (overwritten by the next forward); backward() returns
//   the input gradient and adds (+=) into the parameters' grads (call ParamSet::zero_grad first).
// - collect(set, prefix) registers parameters under scoped names (prefix + ".weight", ...).
// - init(rng) draws the initial values (the constructor leaves weights zero).
#pragma once
#include <attnviz/engine/param.hpp>
#include <attnviz/engine/rng.hpp>

#include <string>
#include <vector>

namespace attnviz::nn {

enum class Init { XavierUniform, KaimingUniform, KaimingNormal, Normal002, Zeros };

// y = x W + b. W: [in, out] (note: transposed relative to PyTorch's [out, in]), b: [1, out].
struct Linear {
  Param weight, bias;  // names "<prefix>.weight", "<prefix>.bias"
  bool has_bias = true;
  Mat x_;              // cache: [N, in]

  Linear() = default;
  Linear(int in, int out, bool has_bias = true);
  int in() const { return static_cast<int>(weight.value.rows()); }
  int out() const { return static_cast<int>(weight.value.cols()); }
  void init(Rng& rng, Init kind = Init::XavierUniform);   // bias starts at zero
  void collect(ParamSet& set, const std::string& prefix);
  Mat forward(const Mat& x);                     // x: [N, in] -> [N, out]; caches x
  Mat forward(Mat&& x);                          // the same, keeping x without a copy
  Mat backward(const Mat& dy);                   // dy: [N, out] -> dx [N, in]
  // Stateless variants for step-by-step use (caller keeps x per step).
  Mat apply(const Mat& x) const;                 // no cache
  Mat backward(const Mat& x, const Mat& dy);     // explicit input instead of the cache
};

// Per-row normalisation over the last dimension: y = (x - mean) / sqrt(var + eps) * gamma + beta.
struct LayerNorm {
  Param gamma, beta;   // "<prefix>.weight", "<prefix>.bias", [1, D]
  float eps = 1e-5f;
  Mat xhat_;           // cache: [N, D]
  Vec rstd_;           // cache: [N]

  LayerNorm() = default;
  explicit LayerNorm(int dim, float eps = 1e-5f);   // gamma = 1, beta = 0
  void collect(ParamSet& set, const std::string& prefix);
  Mat forward(const Mat& x);    // [N, D] -> [N, D]
  Mat backward(const Mat& dy);  // [N, D] -> [N, D]
};

// GELU, exact erf form: x * 0.5 * (1 + erf(x / sqrt(2))) (PyTorch's default nn.GELU()).
struct Gelu {
  Mat dydx_;   // cache: the derivative at the last forward's inputs (backward is one product)
  Mat forward(const Mat& x);
  Mat forward(Mat&& x);   // keeps x without a copy
  Mat backward(const Mat& dy);
};

struct Relu {
  Mat y_;
  Mat forward(const Mat& x);
  Mat backward(const Mat& dy);
};

struct Tanh {
  Mat y_;
  Mat forward(const Mat& x);
  Mat backward(const Mat& dy);
};

// Token embedding: row ids[i] of W. W: [V, D].
struct Embedding {
  Param weight;            // "<prefix>.weight"
  int padding_idx = -1;    // if >= 0: this id's row gets no gradient
  std::vector<int> ids_;   // cache

  Embedding() = default;
  Embedding(int vocab, int dim, int padding_idx = -1);
  void init(Rng& rng, float stddev = 0.02f);    // N(0, stddev), padding row zero
  void collect(ParamSet& set, const std::string& prefix);
  // ids: [N] (any id outside [0, V) throws std::out_of_range) -> [N, D]
  Mat forward(const std::vector<int>& ids);
  void backward(const Mat& dy);                 // dy: [N, D]; scatter-adds into weight.grad
};

// Learned absolute positions: y[b*T + t] = x[b*T + t] + P[t]. P: [max_len, D].
struct PositionalEmbedding {
  Param weight;   // "<prefix>.weight"
  int B_ = 0, T_ = 0;

  PositionalEmbedding() = default;
  PositionalEmbedding(int max_len, int dim);
  void init(Rng& rng, float stddev = 0.02f);
  void collect(ParamSet& set, const std::string& prefix);
  Mat forward(const Mat& x, int B, int T);   // x: [B*T, D], T <= max_len
  Mat backward(const Mat& dy);               // returns dx (= dy), adds into weight.grad
};

struct PatchEmbeddingOptions {
  int height = 28, width = 28, channels = 1;
  int patch = 4;        // square patches; height and width must be multiples
  int dim = 64;
  bool cls_token = true;     // prepend a learned [CLS] token (sequence length P + 1)
  bool positions = true;     // add a learned positional embedding [P (+1), D]
};

// ViT input: cut images into patches (row-major patch order), project each with a Linear,
// optionally prepend [CLS] and add learned positions.
struct PatchEmbedding {
  PatchEmbeddingOptions opt;
  Linear proj;           // "<prefix>.proj": [patch*patch*channels, dim]
  Param cls;             // "<prefix>.cls": [1, D] (registered only with cls_token)
  Param pos;             // "<prefix>.pos": [T, D] (registered only with positions)
  int B_ = 0;

  PatchEmbedding() = default;
  explicit PatchEmbedding(const PatchEmbeddingOptions& opt);
  int patches() const;   // P = (height/patch) * (width/patch)
  int tokens() const;    // T = P + cls_token
  void init(Rng& rng);
  void collect(ParamSet& set, const std::string& prefix);
  // images: [B, channels*height*width] (channel-major, pixels row-major) -> [B*T, D]
  Mat forward(const Mat& images);
  void backward(const Mat& dy);   // dy: [B*T, D]; parameter grads only (images need none)
  // Patch p of image b as row b*P + p, features ordered (channel, row-in-patch, col-in-patch).
  static Mat extract_patches(const Mat& images, const PatchEmbeddingOptions& opt);  // [B*P, p*p*C]
};

// Inverted dropout: zeroes with probability p and scales survivors by 1/(1-p) when training;
// identity when !training or p == 0. Masks come from the Rng passed in (deterministic).
struct Dropout {
  float p = 0.f;
  Mat mask_;       // cache: [N, D] of 0 or 1/(1-p); empty when inactive

  Dropout() = default;
  explicit Dropout(float p) : p(p) {}
  Mat forward(const Mat& x, Rng& rng, bool training);
  Mat backward(const Mat& dy);
};

}  // namespace attnviz::nn
