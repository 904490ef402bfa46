// Byte-pair encoding (Sennrich et al. 2016): learning merges from word counts, segmenting words.
#include <attnviz/error.hpp>
#include <attnviz/text/bpe.hpp>
#include <attnviz/text/tokenizer.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <set>

namespace attnviz {

namespace {

constexpr const char* kEnd = "</w>";   // marks a word's last symbol while merging
constexpr const char* kCont = "@@";    // marks a piece that continues into the next

bool ends_with(const std::string& s, const std::string& e) {
  return s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0;
}

// The word as symbols: its code points, the last one with "</w>" appended.
std::vector<std::string> characters(const std::string& word) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < word.size()) {
    size_t start = pos;
    char32_t cp;
    utf8_next(word, pos, cp);
    out.push_back(word.substr(start, pos - start));
  }
  if (!out.empty()) out.back() += kEnd;
  return out;
}

// Symbols to pieces: "</w>" dropped from the last, "@@" added to the others.
std::vector<std::string> to_pieces(std::vector<std::string> sym) {
  for (size_t i = 0; i < sym.size(); ++i) {
    if (i + 1 < sym.size()) sym[i] += kCont;
    else if (ends_with(sym[i], kEnd)) sym[i].resize(sym[i].size() - 4);
  }
  return sym;
}

}  // namespace

Bpe::Bpe(std::vector<Pair> merges) : merges_(std::move(merges)) {
  for (size_t r = 0; r < merges_.size(); ++r) rank_sorted_.emplace_back(merges_[r], static_cast<int>(r));
  std::sort(rank_sorted_.begin(), rank_sorted_.end());
}

int Bpe::rank(const std::string& a, const std::string& b) const {
  auto it = std::lower_bound(rank_sorted_.begin(), rank_sorted_.end(), std::make_pair(Pair{a, b}, -1));
  return it != rank_sorted_.end() && it->first.first == a && it->first.second == b ? it->second : -1;
}

Bpe Bpe::learn(const std::vector<std::vector<std::string>>& sentences, int merges) {
  std::map<std::string, long> freq;
  for (const auto& s : sentences)
    for (const auto& w : s)
      if (!w.empty()) ++freq[w];
  std::vector<std::vector<std::string>> sym;   // each word type as its current symbols
  std::vector<long> cnt;
  for (const auto& [w, c] : freq) sym.push_back(characters(w)), cnt.push_back(c);

  // Pair counts, kept in step with an ordered set (most frequent first, then the smaller pair),
  // and the words that (may) hold each pair: merging touches only those words.
  std::map<Pair, long> count;
  std::set<std::pair<long, Pair>> order;   // (-count, pair)
  std::map<Pair, std::vector<int>> where;
  auto add = [&](const Pair& p, long d, int word) {
    long& c = count[p];
    if (c > 0) order.erase({-c, p});
    c += d;
    if (c > 0) order.insert({-c, p});
    if (d > 0) where[p].push_back(word);
  };
  auto add_word = [&](int w, long sign) {
    for (size_t i = 0; i + 1 < sym[w].size(); ++i) add({sym[w][i], sym[w][i + 1]}, sign * cnt[w], w);
  };
  for (int w = 0; w < static_cast<int>(sym.size()); ++w) add_word(w, 1);

  std::vector<Pair> learned;
  while (static_cast<int>(learned.size()) < merges && !order.empty() && -order.begin()->first >= 2) {
    const Pair best = order.begin()->second;
    learned.push_back(best);
    std::vector<int> words = std::move(where[best]);
    where.erase(best);
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end()), words.end());
    for (int w : words) {
      auto& s = sym[w];
      bool has = false;
      for (size_t i = 0; i + 1 < s.size() && !has; ++i) has = s[i] == best.first && s[i + 1] == best.second;
      if (!has) continue;   // a stale entry: an earlier merge already consumed the pair here
      add_word(w, -1);
      std::vector<std::string> merged;
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == best.first && s[i + 1] == best.second) {
          merged.push_back(s[i] + s[i + 1]);
          ++i;
        } else {
          merged.push_back(s[i]);
        }
      }
      s = std::move(merged);
      add_word(w, 1);
    }
  }
  return Bpe(std::move(learned));
}

std::vector<std::string> Bpe::segment(const std::string& word) const {
  std::vector<std::string> s = characters(word);
  while (s.size() > 1) {
    int best = -1;
    size_t at = 0;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      int r = rank(s[i], s[i + 1]);
      if (r >= 0 && (best < 0 || r < best)) best = r, at = i;
    }
    if (best < 0) break;
    // merge every occurrence of the best pair, left to right
    const Pair p = merges_[best];
    std::vector<std::string> merged;
    for (size_t i = 0; i < s.size(); ++i) {
      if (i + 1 < s.size() && i >= at && s[i] == p.first && s[i + 1] == p.second) {
        merged.push_back(s[i] + s[i + 1]);
        ++i;
      } else {
        merged.push_back(s[i]);
      }
    }
    s = std::move(merged);
  }
  return to_pieces(std::move(s));
}

std::vector<std::string> Bpe::apply(const std::vector<std::string>& words) const {
  if (empty()) return words;
  std::vector<std::string> out;
  for (const auto& w : words) {
    auto p = segment(w);
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

std::string Bpe::to_json() const {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& [a, b] : merges_) j.push_back({a, b});
  return j.dump();
}

Bpe Bpe::from_json(const std::string& text, const std::string& path) {
  std::vector<Pair> m;
  try {
    auto j = nlohmann::json::parse(text);
    if (!j.is_array()) throw InputError(path, "BPE merges: not a JSON array");
    for (const auto& e : j) {
      if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_string())
        throw InputError(path, "BPE merges: every entry must be a pair of strings");
      m.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
    }
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path, std::string("BPE merges are not valid JSON: ") + e.what());
  }
  return Bpe(std::move(m));
}

}  // namespace attnviz
