// Corpus BLEU-4 with clipped n-gram counts and the standard brevity penalty.
#include <attnviz/analysis/bleu.hpp>

#include <cmath>
#include <map>
#include <stdexcept>

namespace attnviz {

namespace {
using Ngrams = std::map<std::vector<std::string>, int>;
Ngrams count_ngrams(const std::vector<std::string>& s, int n) {
  Ngrams m;
  for (size_t i = 0; i + n <= s.size(); ++i) ++m[std::vector<std::string>(s.begin() + i, s.begin() + i + n)];
  return m;
}
}  // namespace

BleuScore corpus_bleu(const std::vector<std::vector<std::string>>& hyps,
                      const std::vector<std::vector<std::string>>& refs) {
  if (hyps.size() != refs.size()) throw std::invalid_argument("corpus_bleu: hypothesis and reference counts differ");
  BleuScore out;
  long match[4] = {}, total[4] = {};
  for (size_t k = 0; k < hyps.size(); ++k) {
    out.hypothesis_length += static_cast<long>(hyps[k].size());
    out.reference_length += static_cast<long>(refs[k].size());
    for (int n = 1; n <= 4; ++n) {
      auto h = count_ngrams(hyps[k], n), r = count_ngrams(refs[k], n);
      for (const auto& [g, c] : h) {
        auto it = r.find(g);
        match[n - 1] += std::min(c, it == r.end() ? 0 : it->second);
        total[n - 1] += c;
      }
    }
  }
  double log_sum = 0;
  bool zero = false;
  for (int n = 0; n < 4; ++n) {
    out.precisions[n] = total[n] > 0 ? static_cast<double>(match[n]) / total[n] : 0.0;
    if (out.precisions[n] <= 0) zero = true;
    else log_sum += std::log(out.precisions[n]);
  }
  const double c = static_cast<double>(out.hypothesis_length), r = static_cast<double>(out.reference_length);
  out.brevity_penalty = c <= 0 ? 0.0 : (c > r ? 1.0 : std::exp(1.0 - r / c));
  out.bleu = zero ? 0.0 : out.brevity_penalty * std::exp(log_sum / 4.0);
  return out;
}

}  // namespace attnviz
