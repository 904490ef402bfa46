// Counting and locating NaN/Inf attention weights.
#include <attnviz/record/nonfinite.hpp>

#include <cmath>

namespace attnviz {

NonFiniteReport find_nonfinite(const AttentionTensor& t, std::size_t max_positions) {
  NonFiniteReport r;
  const std::size_t n = t.data.size();
  for (std::size_t i = 0; i < n; ++i) {
    const float v = t.data[i];
    if (std::isfinite(v)) continue;
    if (std::isnan(v)) ++r.nan;
    else if (v > 0) ++r.pos_inf;
    else ++r.neg_inf;
    if (r.first.size() < max_positions && t.keys > 0 && t.queries > 0) {
      const std::size_t per_head = static_cast<std::size_t>(t.queries) * t.keys;
      r.first.push_back({static_cast<int>(i / per_head), static_cast<int>(i % per_head / t.keys),
                         static_cast<int>(i % t.keys), v});
    }
  }
  return r;
}

std::string nonfinite_name(float v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return "finite";
}

}  // namespace attnviz
