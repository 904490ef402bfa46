// The MNIST vision transformer: patch embedding + CLS + learned positions, L pre-LN encoder blocks
// with its own batched self-attention (it keeps the weights and their gradients), final LN, head.
#pragma once
#include <attnviz/models/mnist.hpp>
#include <attnviz/engine/layers.hpp>

namespace attnviz::models {

// Multi-head self-attention on [B*T, 3D] packed q|k|v rows, with the weights kept for backward
// (T is small: 50 for MNIST) and d(loss)/d(weights) kept after backward.
struct VitSelfAttention {
  int B = 0, T = 0, D = 0, H = 0;
  Mat qkv_;                      // cache: [B*T, 3D]
  // Aligned storage: Eigen's vectorised reductions peel by alignment, so unaligned buffers would
  // change summation order from run to run and break bitwise reproducibility.
  using Buffer = std::vector<float, Eigen::aligned_allocator<float>>;
  Buffer w_;                     // [B, H, T, T] softmax weights of the last forward
  Buffer dw_;                    // [B, H, T, T] their gradient after backward
  Buffer perturb;                // optional [B, H, T, T] added to the weights after the softmax
                                 // (finite-difference checks of dw_ only; empty = none)
  Mat forward(const Mat& qkv, int B, int T, int H);   // -> ctx [B*T, D]
  Mat backward(const Mat& dctx);                      // -> dqkv [B*T, 3D]
};

struct VitBlock {
  nn::LayerNorm ln1, ln2;
  nn::Linear qkv, out, fc1, fc2;   // "attn.qkv" [D, 3D], "attn.out" [D, D], "mlp.fc1", "mlp.fc2"
  nn::Gelu gelu;
  VitSelfAttention attn;
  int heads = 4;
  VitBlock() = default;
  VitBlock(int dim, int heads, int mlp);
  void init(nn::Rng& rng);
  void collect(nn::ParamSet& set, const std::string& prefix);
  Mat forward(const Mat& x, int B, int T);   // [B*T, D] -> [B*T, D]
  Mat backward(const Mat& dy);
};

class VitModel : public MnistModel {
 public:
  VitModel(const MnistConfig& cfg, std::uint64_t seed);
  Mat forward(const Mat& images, AttentionSink* sink = nullptr) override;
  void backward(const Mat& dlogits, AttentionSink* sink = nullptr) override;
  std::vector<AttentionTensor> attention(int b) const override;
  std::vector<AttentionTensor> attention_grads(int b) const override;

  nn::PatchEmbedding embed;   // "embed"
  std::vector<VitBlock> blocks;  // "vit.layer{l}"
  nn::LayerNorm norm;         // "norm"
  nn::Linear head;            // "head"

 private:
  int B_ = 0;
};

}  // namespace attnviz::models
