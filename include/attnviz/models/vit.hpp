// The MNIST vision transformer: patch embedding + CLS + learned positions, L pre-LN encoder blocks
// of the engine (nn::EncoderBlock, its MultiHeadAttention), final LN, head on the CLS row.
#pragma once
#include <attnviz/models/mnist.hpp>
#include <attnviz/engine/blocks.hpp>
#include <attnviz/engine/layers.hpp>
#include <attnviz/io/safetensors.hpp>

namespace attnviz::models {

// Parameters: "embed.*", "vit.layer{l}.{ln1,attn.wq,attn.wk,attn.wv,attn.wo,ln2,fc1,fc2}.*",
// "norm.*", "head.*". Files of earlier releases (one packed "attn.qkv", "attn.out", "mlp.fc1",
// "mlp.fc2") are upgraded on load by upgrade_vit_tensors.
class VitModel : public MnistModel {
 public:
  VitModel(const MnistConfig& cfg, std::uint64_t seed);
  Mat forward(const Mat& images, AttentionSink* sink = nullptr) override;
  void backward(const Mat& dlogits, AttentionSink* sink = nullptr) override;
  // The ViT keeps each layer's weights of the last forward (T is small: 50 for MNIST) and their
  // gradients of the last backward, for recording, grad-rollout and chefer. When the forward's sink asked
  // for norms or mixing, attention(b) also holds "vit.layer{l}.self.norm", ".norm_sum", ".mixing"
  // after each layer's tensor, and "vit.mixing_rollout".
  std::vector<AttentionTensor> attention(int b) const override;
  std::vector<AttentionTensor> attention_grads(int b) const override;
  // LRP through head, final LN and the blocks (nn::lrp_encoder_block); keeps each block's R^(b).
  Mat relevance(const Mat& R) override;
  std::vector<AttentionTensor> attention_relevance(int b) const override;
  void upgrade_tensors(StFile& file) const override { upgrade_vit_tensors(file); }

  nn::PatchEmbedding embed;            // "embed"
  std::vector<nn::EncoderBlock> blocks;  // "vit.layer{l}"
  nn::LayerNorm norm;                  // "norm"
  nn::Linear head;                     // "head"

  // Renames the tensors of an earlier release's ViT file (or checkpoint: any prefix, so Adam's
  // moments too) in place: "<p>vit.layer{l}.attn.qkv.{weight,bias}" [D, 3D] / [3D] is split by
  // columns into attn.wq / wk / wv; attn.out -> attn.wo; mlp.fc1/fc2 -> fc1/fc2.
  static void upgrade_vit_tensors(StFile& file);

 private:
  int B_ = 0;
  bool row_only_ = false;   // the last forward ran the last block on the CLS rows only (no sink)
  std::vector<std::vector<std::pair<std::string, nn::AttentionWeights>>> extra_;   // per layer: norms, mixing
  std::vector<nn::AttentionWeights> w_, dw_, rel_;   // per layer [B, H, T, T]
  std::vector<Mat> xs_;                              // with a sink: each block's input [B*T, D]
};

}  // namespace attnviz::models
