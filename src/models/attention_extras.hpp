// What a sink may ask besides the weights of an encoder block: norm-based attention and value
// zeroing (internal to src/models; used by the ViT and the transformer text classifier).
#pragma once
#include <attnviz/engine/blocks.hpp>
#include <attnviz/models/model.hpp>
#include <attnviz/record/record.hpp>

#include <string>
#include <utility>
#include <vector>

namespace attnviz::models {

// Tensors kept for attention(b): (record name, weights [B, H', T, T]) in the order they go out.
using NamedWeights = std::vector<std::pair<std::string, nn::AttentionWeights>>;

// After block's forward on x [B*T, D] that gave w [B, H, T, T] (named `name`): as the sink asks,
// "<name>.norm" [B, H, T, T] and "<name>.norm_sum" [B, 1, T, T] (nn::norm_attention) and
// "<name>.mixing" [B, 1, T, T] (nn::value_zeroing) go to the sink and are appended to *kept.
void encoder_block_extras(const nn::EncoderBlock& block, const Mat& x, const nn::AttentionWeights& w,
                          const std::string& name, AttentionSink& sink, NamedWeights* kept);

// "<stack>.mixing_rollout" [1, T, T] over the record tensors named "<stack>.layerN.self.mixing",
// bottom to top (analysis/context_mixing.hpp); nothing when there are none.
void add_mixing_rollout(std::vector<AttentionTensor>& tensors, const std::string& stack);

}  // namespace attnviz::models
