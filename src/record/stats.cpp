// Per-head entropy and top-k keys of attention tensors.
#include <attnviz/record/stats.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

namespace attnviz {

std::vector<float> head_entropy(const AttentionTensor& t) {
  std::vector<float> out(t.heads, 0.0f);
  for (int h = 0; h < t.heads; ++h) {
    double sum = 0;
    for (int q = 0; q < t.queries; ++q) {
      double e = 0;
      for (int k = 0; k < t.keys; ++k) {
        double p = t.at(h, q, k);
        if (p > 0 && std::isfinite(p)) e -= p * std::log(p);
      }
      sum += e;
    }
    out[h] = static_cast<float>(sum / std::max(1, t.queries));
  }
  return out;
}

std::vector<std::pair<int, float>> top_keys(const AttentionTensor& t, int head, int query, int k) {
  std::vector<std::pair<int, float>> row(t.keys);
  for (int j = 0; j < t.keys; ++j) row[j] = {j, t.at(head, query, j)};
  k = std::min(k, t.keys);
  // Non-finite weights (NaN) sort last so the comparator stays a strict weak order.
  auto key = [](float w) { return std::isnan(w) ? -std::numeric_limits<float>::infinity() : w; };
  std::partial_sort(row.begin(), row.begin() + k, row.end(), [&](auto& a, auto& b) {
    return key(a.second) > key(b.second) || (key(a.second) == key(b.second) && a.first < b.first);
  });
  row.resize(k);
  return row;
}

}  // namespace attnviz
