// Norm-based attention and value zeroing handed out by encoder-block models, and their rollout.
#include "models/attention_extras.hpp"

#include <attnviz/analysis/context_mixing.hpp>
#include <attnviz/engine/context_mixing.hpp>
#include <attnviz/engine/norm_attention.hpp>

#include <algorithm>

namespace attnviz::models {

void encoder_block_extras(const nn::EncoderBlock& block, const Mat& x, const nn::AttentionWeights& w,
                          const std::string& name, AttentionSink& sink, NamedWeights* kept) {
  auto give = [&](const std::string& n, nn::AttentionWeights&& t) {
    if (kept) kept->emplace_back(n, t);
    sink.weights(n, std::move(t));
  };
  if (sink.wants_norms()) {
    nn::NormAttention n = nn::norm_attention(block.attn, w);
    give(name + ".norm", std::move(n.per_head));
    give(name + ".norm_sum", std::move(n.summed));
  }
  if (sink.wants_mixing()) give(name + ".mixing", nn::value_zeroing(block, x, w));
}

void add_mixing_rollout(std::vector<AttentionTensor>& tensors, const std::string& stack) {
  std::vector<const AttentionTensor*> maps;
  for (const auto& t : tensors) {
    const TensorName n = parse_tensor_name(t.name);
    if (n.layer >= 0 && n.stack == stack && n.kind == "self.mixing") maps.push_back(&t);
  }
  if (maps.empty()) return;
  std::sort(maps.begin(), maps.end(), [](auto* a, auto* b) { return parse_tensor_name(a->name).layer < parse_tensor_name(b->name).layer; });
  AttentionTensor r(stack + ".mixing_rollout", 1, maps.front()->queries, maps.front()->keys, maps.front()->query_axis,
                    maps.front()->key_axis);
  r.set_head(0, mixing_rollout(maps));
  tensors.push_back(std::move(r));
}

}  // namespace attnviz::models
