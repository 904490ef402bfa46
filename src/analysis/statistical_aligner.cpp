// IBM Model 1 / fast_align-style diagonal prior, EM in both directions, and the symmetrization
// heuristics. Written for this project: it is small, and no Debian library offers it (fast_align
// itself is a separate program, not a library).
#include <attnviz/analysis/statistical_aligner.hpp>
#include <attnviz/error.hpp>
#include <attnviz/io/limits.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <unordered_map>

namespace attnviz {

Symmetrize parse_symmetrize(const std::string& name) {
  static const std::pair<const char*, Symmetrize> names[] = {
      {"forward", Symmetrize::Forward},         {"reverse", Symmetrize::Reverse},
      {"intersect", Symmetrize::Intersect},     {"union", Symmetrize::Union},
      {"grow-diag", Symmetrize::GrowDiag},      {"grow-diag-final", Symmetrize::GrowDiagFinal},
      {"grow-diag-final-and", Symmetrize::GrowDiagFinalAnd}};
  for (const auto& [n, s] : names)
    if (name == n) return s;
  throw UsageError("--symmetrize: '" + name +
                   "' is not one of forward, reverse, intersect, union, grow-diag, grow-diag-final, grow-diag-final-and");
}

const char* symmetrize_name(Symmetrize s) {
  switch (s) {
    case Symmetrize::Forward: return "forward";
    case Symmetrize::Reverse: return "reverse";
    case Symmetrize::Intersect: return "intersect";
    case Symmetrize::Union: return "union";
    case Symmetrize::GrowDiag: return "grow-diag";
    case Symmetrize::GrowDiagFinal: return "grow-diag-final";
    case Symmetrize::GrowDiagFinalAnd: return "grow-diag-final-and";
  }
  return "?";
}

namespace {

// One direction: "generating" sentences e (m words, plus NULL) and "generated" sentences f (n
// words). Every (e, f) word-type pair that co-occurs in some sentence gets one slot of the table;
// each sentence keeps the slot of each of its (i, j) cells, so EM runs on flat arrays.
struct Direction {
  std::vector<std::vector<int>> e, f;     // word ids per sentence (e ids start at 1; 0 = NULL)
  std::vector<std::vector<int>> slot;     // per sentence: (m + 1) x n slots, row 0 = NULL
  std::vector<int> slot_e;                // generating word of each slot (for normalization)
  std::vector<double> t;                  // t(f | e) per slot
};

Direction build(const std::vector<SentencePair>& pairs, bool forward) {
  Direction d;
  std::unordered_map<std::string, int> ev, fv;
  auto id = [](std::unordered_map<std::string, int>& v, const std::string& w, int base) {
    auto [it, fresh] = v.emplace(w, static_cast<int>(v.size()) + base);
    return it->second;
  };
  std::unordered_map<std::uint64_t, int> slots;
  d.e.reserve(pairs.size()), d.f.reserve(pairs.size()), d.slot.reserve(pairs.size());
  for (const auto& p : pairs) {
    const auto& es = forward ? p.source : p.target;
    const auto& fs = forward ? p.target : p.source;
    std::vector<int> e, f;
    for (const auto& w : es) e.push_back(id(ev, w, 1));
    for (const auto& w : fs) f.push_back(id(fv, w, 0));
    std::vector<int> sl((e.size() + 1) * f.size());
    for (size_t i = 0; i <= e.size(); ++i) {
      const int ei = i == 0 ? 0 : e[i - 1];
      for (size_t j = 0; j < f.size(); ++j) {
        const std::uint64_t key = (static_cast<std::uint64_t>(ei) << 32) | static_cast<std::uint32_t>(f[j]);
        auto [it, fresh] = slots.emplace(key, static_cast<int>(d.slot_e.size()));
        if (fresh) d.slot_e.push_back(ei);
        sl[i * f.size() + j] = it->second;
      }
    }
    d.e.push_back(std::move(e)), d.f.push_back(std::move(f)), d.slot.push_back(std::move(sl));
  }
  d.t.assign(d.slot_e.size(), fv.empty() ? 1.0 : 1.0 / static_cast<double>(fv.size()));
  return d;
}

// Alignment prior p(a_j = i | j, m, n) for i = 0 (NULL) .. m, fast_align's form at fixed tension:
// (1 - p0) exp(-lambda |i/m - j/n|) / Z over the words (positions at word centres), p0 for NULL.
// lambda = 0: IBM Model 1's uniform 1 / (m + 1).
void prior(int j, int m, int n, const StatAlignOptions& o, std::vector<double>& p) {
  p.assign(m + 1, 0.0);
  if (o.diagonal_tension <= 0) {
    std::fill(p.begin(), p.end(), 1.0 / (m + 1));
    return;
  }
  double z = 0;
  const double y = (j + 0.5) / n;
  for (int i = 1; i <= m; ++i) z += p[i] = std::exp(-o.diagonal_tension * std::fabs((i - 0.5) / m - y));
  for (int i = 1; i <= m; ++i) p[i] *= (1 - o.null_probability) / z;
  p[0] = o.null_probability;
}

void em(Direction& d, const StatAlignOptions& o) {
  std::vector<double> counts(d.t.size()), total;
  std::vector<double> pr, post;
  int max_e = 0;
  for (int e : d.slot_e) max_e = std::max(max_e, e);
  for (int it = 0; it < o.iterations; ++it) {
    std::fill(counts.begin(), counts.end(), 0.0);
    for (size_t s = 0; s < d.e.size(); ++s) {
      const int m = static_cast<int>(d.e[s].size()), n = static_cast<int>(d.f[s].size());
      const auto& sl = d.slot[s];
      for (int j = 0; j < n; ++j) {
        prior(j, m, n, o, pr);
        post.resize(m + 1);
        double z = 0;
        for (int i = 0; i <= m; ++i) z += post[i] = pr[i] * d.t[sl[i * n + j]];
        if (z <= 0) continue;
        for (int i = 0; i <= m; ++i) counts[sl[i * n + j]] += post[i] / z;
      }
    }
    total.assign(max_e + 1, 0.0);
    for (size_t k = 0; k < counts.size(); ++k) total[d.slot_e[k]] += counts[k];
    for (size_t k = 0; k < counts.size(); ++k) d.t[k] = total[d.slot_e[k]] > 0 ? counts[k] / total[d.slot_e[k]] : 0.0;
  }
}

// Viterbi links of one direction as (generating index, generated index); NULL gets none.
std::vector<Alignment> viterbi(const Direction& d, const StatAlignOptions& o, bool forward) {
  std::vector<Alignment> out(d.e.size());
  std::vector<double> pr;
  for (size_t s = 0; s < d.e.size(); ++s) {
    const int m = static_cast<int>(d.e[s].size()), n = static_cast<int>(d.f[s].size());
    for (int j = 0; j < n; ++j) {
      prior(j, m, n, o, pr);
      // The first most probable word; NULL only when strictly more probable than every word
      // (a word that occurs in every sentence, like NULL itself, ties with NULL under Model 1).
      int best = 0;
      double bp = -1;
      for (int i = 1; i <= m; ++i) {
        const double p = pr[i] * d.t[d.slot[s][i * n + j]];
        if (p > bp) bp = p, best = i;
      }
      if (pr[0] * d.t[d.slot[s][j]] > bp) best = 0;
      if (best == 0) continue;
      // forward: e = source, f = target -> link (source best-1, target j); reverse: swapped.
      out[s].links.push_back(forward ? AlignmentLink{best - 1, j} : AlignmentLink{j, best - 1});
    }
  }
  return out;
}

}  // namespace

DirectionalAlignments train_directions(const std::vector<SentencePair>& pairs, const StatAlignOptions& opt) {
  if (opt.iterations < 0) throw UsageError("--iterations must be 0 or more");
  if (!(opt.null_probability > 0 && opt.null_probability < 1)) throw UsageError("the NULL probability must be in (0, 1)");
  // Both directions keep one int per (word, word) cell of every sentence: checked before building.
  std::uint64_t cells = 0;
  for (const auto& p : pairs) cells += (p.source.size() + 1) * p.target.size() + (p.target.size() + 1) * p.source.size();
  check_array_bytes(cells * sizeof(int), opt.corpus_path, "the aligner's per-sentence cell tables");
  DirectionalAlignments r;
  Direction fwd = build(pairs, true);
  em(fwd, opt);
  r.forward = viterbi(fwd, opt, true);
  Direction rev = build(pairs, false);
  em(rev, opt);
  r.reverse = viterbi(rev, opt, false);
  return r;
}

Alignment symmetrize(const Alignment& forward, const Alignment& reverse, int m, int n, Symmetrize how) {
  if (how == Symmetrize::Forward) return forward;
  if (how == Symmetrize::Reverse) return reverse;
  std::vector<char> f(static_cast<size_t>(m) * n, 0), r(f.size(), 0), a(f.size(), 0);
  auto at = [n](int i, int j) { return static_cast<size_t>(i) * n + j; };
  for (const auto& l : forward.links) f[at(l.source, l.target)] = 1;
  for (const auto& l : reverse.links) r[at(l.source, l.target)] = 1;
  std::vector<int> src_links(m, 0), tgt_links(n, 0);
  auto add = [&](int i, int j) {
    a[at(i, j)] = 1;
    ++src_links[i], ++tgt_links[j];
  };
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      const bool in = how == Symmetrize::Union ? (f[at(i, j)] || r[at(i, j)]) : (f[at(i, j)] && r[at(i, j)]);
      if (in) add(i, j);
    }
  if (how == Symmetrize::GrowDiag || how == Symmetrize::GrowDiagFinal || how == Symmetrize::GrowDiagFinalAnd) {
    // grow-diag (Koehn et al. 2005): repeatedly add union points next to (also diagonally) an
    // alignment point when one of their two words is still unaligned.
    static const int di[] = {-1, 0, 1, 0, -1, -1, 1, 1}, dj[] = {0, -1, 0, 1, -1, 1, -1, 1};
    for (bool grew = true; grew;) {
      grew = false;
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
          if (!a[at(i, j)]) continue;
          for (int k = 0; k < 8; ++k) {
            const int ii = i + di[k], jj = j + dj[k];
            if (ii < 0 || jj < 0 || ii >= m || jj >= n || a[at(ii, jj)]) continue;
            if (!(f[at(ii, jj)] || r[at(ii, jj)])) continue;
            if (src_links[ii] == 0 || tgt_links[jj] == 0) add(ii, jj), grew = true;
          }
        }
    }
    if (how != Symmetrize::GrowDiag) {
      // final (-and): points of either direction whose source or (-and: and) target word is unaligned.
      const bool both = how == Symmetrize::GrowDiagFinalAnd;
      for (const auto* dir : {&f, &r})
        for (int i = 0; i < m; ++i)
          for (int j = 0; j < n; ++j) {
            if (!(*dir)[at(i, j)] || a[at(i, j)]) continue;
            const bool si = src_links[i] == 0, tj = tgt_links[j] == 0;
            if (both ? (si && tj) : (si || tj)) add(i, j);
          }
    }
  }
  Alignment out;
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i)
      if (a[at(i, j)]) out.links.push_back({i, j});
  return out;
}

Combine parse_combine(const std::string& name) {
  if (name == "product") return Combine::Product;
  if (name == "none") return Combine::None;
  throw UsageError("--combine: '" + name + "' is not one of product, none");
}

const char* combine_name(Combine c) { return c == Combine::Product ? "product" : "none"; }

Alignment symmetrize_attention(const Mat& forward, const Mat& reverse, const AlignOptions& opt, Symmetrize how,
                               Combine combine) {
  if (reverse.rows() != forward.cols() || reverse.cols() != forward.rows())
    throw std::invalid_argument(fmt::format("symmetrize_attention: the reverse attention is [{}, {}], the forward [{}, {}] "
                                            "(it must be the transpose's shape)",
                                            reverse.rows(), reverse.cols(), forward.rows(), forward.cols()));
  Alignment f, r;
  if (combine == Combine::Product) {
    const Mat both = forward.cwiseProduct(reverse.transpose());
    f = extract_alignment(both, opt);
    for (const auto& l : extract_alignment(both.transpose(), opt).links) r.links.push_back({l.target, l.source, l.sure});
  } else {
    f = extract_alignment(forward, opt);
    for (const auto& l : extract_alignment(reverse, opt).links) r.links.push_back({l.target, l.source, l.sure});
  }
  Alignment out = symmetrize(f, r, static_cast<int>(forward.cols()), static_cast<int>(forward.rows()), how);
  std::sort(out.links.begin(), out.links.end(), [](const AlignmentLink& a, const AlignmentLink& b) {
    return a.target != b.target ? a.target < b.target : a.source < b.source;
  });
  return out;
}

std::vector<Alignment> train_and_align(const std::vector<SentencePair>& pairs, const StatAlignOptions& opt) {
  const DirectionalAlignments d = train_directions(pairs, opt);
  std::vector<Alignment> out;
  out.reserve(pairs.size());
  for (size_t s = 0; s < pairs.size(); ++s)
    out.push_back(symmetrize(d.forward[s], d.reverse[s], static_cast<int>(pairs[s].source.size()),
                             static_cast<int>(pairs[s].target.size()), opt.symmetrize));
  return out;
}

}  // namespace attnviz
