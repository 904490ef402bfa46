// The attention-pooling MNIST baseline of the classic tutorials, built correctly: a per-region
// (per-patch) MLP encoder, one learned query attending over the regions (a softmax over the P
// regions, not over an axis of size one), and a linear head. Its one attention map is "pool".
#pragma once
#include <attnviz/models/mnist.hpp>
#include <attnviz/engine/attention.hpp>
#include <attnviz/engine/layers.hpp>

namespace attnviz::models {

class PoolClassifier : public MnistModel {
 public:
  PoolClassifier(const MnistConfig& cfg, std::uint64_t seed);
  Mat forward(const Mat& images, AttentionSink* sink = nullptr) override;  // [B, image*image] -> [B, classes]
  void backward(const Mat& dlogits, AttentionSink* sink = nullptr) override;
  std::vector<AttentionTensor> attention(int b) const override;        // "pool" [1, 1, P]
  std::vector<AttentionTensor> attention_grads(int b) const override;  // none (empty)

  nn::PatchEmbedding embed;   // "encoder.embed": patch projection + learned positions
  nn::Gelu act1, act2;
  nn::Linear fc;              // "encoder.fc" [D, D]
  nn::AttentionPooling pool;  // "pool": additive scoring with a learned query
  nn::Linear head;            // "head" [D, classes]

 private:
  nn::AttentionWeights weights_;  // [B, 1, 1, P]
};

}  // namespace attnviz::models
