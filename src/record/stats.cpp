// Per-head entropy and top-k keys of attention tensors.
#include <attnviz/record/stats.hpp>

#include <attnviz/error.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
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

HeadStatsTable head_stats(const std::vector<AttentionRecord>& records, const HeadStatsOptions& opt,
                          const std::string& path) {
  HeadStatsTable out;
  out.samples = static_cast<int>(records.size());
  out.top_k = opt.top_k;
  if (records.empty()) return out;
  std::vector<const AttentionTensor*> chosen;
  for (const auto& t : records.front().tensors)
    if (opt.tensors.empty() || t.name.find(opt.tensors) != std::string::npos) chosen.push_back(&t);
  if (chosen.empty()) throw InputError(path, "no tensor name contains '" + opt.tensors + "'");
  for (const AttentionTensor* t0 : chosen) {
    std::vector<HeadStat> acc(t0->heads);
    for (int h = 0; h < t0->heads; ++h) acc[h] = {t0->name, parse_tensor_name(t0->name).layer, h};
    for (size_t s = 0; s < records.size(); ++s) {
      const AttentionTensor* t = records[s].find(t0->name);
      const std::string where = s < opt.sources.size() ? opt.sources[s] : path;
      const std::string which = s < opt.sources.size() ? "" : "sample " + std::to_string(s) + ": ";
      if (!t) throw InputError(where, which + "has no tensor '" + t0->name + "' (the first sample has it)");
      if (t->heads != t0->heads)
        throw InputError(where, which + "'" + t0->name + "' has " + std::to_string(t->heads) +
                                    " heads, the first sample has " + std::to_string(t0->heads));
      std::vector<float> row(t->keys);
      for (int h = 0; h < t->heads; ++h)
        for (int q = 0; q < t->queries; ++q) {
          double ent = 0, dist = 0;
          bool finite = true;
          for (int k = 0; k < t->keys; ++k) {
            const double p = row[k] = t->at(h, q, k);
            if (!std::isfinite(p)) finite = false;
            if (p > 0) ent -= p * std::log(p);
            dist += p * std::abs(q - k);
          }
          if (!finite) continue;
          const int k = std::min(opt.top_k, t->keys);
          std::partial_sort(row.begin(), row.begin() + k, row.end(), std::greater<float>());
          double top = 0;
          for (int i = 0; i < k; ++i) top += row[i];
          HeadStat& a = acc[h];
          a.entropy += ent, a.distance += dist, a.top_k += top, a.sink += t->keys > 0 ? t->at(h, q, 0) : 0.0;
          ++a.rows;
        }
    }
    for (auto& a : acc) {
      const double n = std::max<long>(1, a.rows);
      a.entropy /= n, a.sink /= n, a.distance /= n, a.top_k /= n;
      out.stats.push_back(a);
    }
  }
  return out;
}

}  // namespace attnviz
