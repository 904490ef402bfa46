// Rollout of context-mixing maps over the layers of a stack.
#include <attnviz/analysis/context_mixing.hpp>
#include <attnviz/error.hpp>

namespace attnviz {

Mat mixing_rollout(const std::vector<const AttentionTensor*>& layers) {
  if (layers.empty()) throw InputError("", "no context-mixing layers to roll out");
  Mat r;
  for (const AttentionTensor* t : layers) {
    if (t->queries != t->keys || (r.size() && r.rows() != t->queries))
      throw InputError("", "context-mixing map '" + t->name + "' does not chain with the layer below");
    const Mat c = t->mean_heads();   // [N, N]
    r = r.size() ? Mat(c * r) : c;
  }
  return r;
}

}  // namespace attnviz
