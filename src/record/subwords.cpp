// Subword-to-word merging of records (WordPiece "##" pieces, byte-level / SentencePiece BPE pieces).
#include <attnviz/error.hpp>
#include <attnviz/record/subwords.hpp>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <map>

namespace attnviz {

namespace {

constexpr const char* kDot = "\xC2\xB7";   // '·': how LM tokenizers display a leading space

bool special(const std::string& t) {
  return t.size() >= 3 && ((t.front() == '[' && t.back() == ']') || (t.front() == '<' && t.back() == '>'));
}
bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string& s, const std::string& e) {
  return s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0;
}

// 0 letter (or any non-ASCII byte: a UTF-8 letter most of the time), 1 digit, 2 other ASCII.
int char_class(unsigned char c) {
  if (c >= 0x80 || std::isalpha(c)) return 0;
  if (std::isdigit(c)) return 1;
  return 2;
}

}  // namespace

std::vector<int> word_groups(const std::vector<std::string>& tokens, const std::string& scheme_in) {
  std::string scheme = scheme_in;
  if (scheme.empty()) {
    for (const auto& t : tokens) {
      if (ends_with(t, "@@") && t.size() > 2) scheme = "bpe@@";
      else if (starts_with(t, "##") && scheme != "bpe@@") scheme = "wordpiece";
      else if (starts_with(t, kDot) && scheme.empty()) scheme = "bpe";
    }
    if (scheme.empty())
      throw UsageError("--merge-subwords: no token is a subword piece (no '##' WordPiece pieces, no '·'-marked BPE "
                       "words, no '@@'-continued BPE pieces)");
  }
  if (scheme != "wordpiece" && scheme != "bpe" && scheme != "bpe@@") throw UsageError("--merge-subwords: unknown subword scheme '" + scheme + "'");
  std::vector<int> g(tokens.size());
  int word = -1;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    bool cont = false;
    if (scheme == "bpe@@") cont = i > 0 && ends_with(tokens[i - 1], "@@");   // subword-nmt: "un@@ able"
    else if (i > 0 && !special(t) && !special(tokens[i - 1]) && !t.empty()) {
      if (scheme == "wordpiece") cont = starts_with(t, "##");
      else if (!starts_with(t, kDot)) {
        const std::string& p = tokens[i - 1];
        cont = !p.empty() && char_class(static_cast<unsigned char>(p.back())) == char_class(static_cast<unsigned char>(t.front()));
      }
    }
    if (!cont) ++word;
    g[i] = word;
  }
  return g;
}

std::vector<std::string> merge_tokens(const std::vector<std::string>& tokens, const std::vector<int>& groups) {
  std::vector<std::string> words;
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::string t = tokens[i];
    if (starts_with(t, "##")) t = t.substr(2);
    if (starts_with(t, kDot) && t.size() > 2) t = t.substr(2);
    // subword-nmt's mark on a piece that continues into the next one
    if (i + 1 < tokens.size() && groups[i + 1] == groups[i] && ends_with(t, "@@")) t.resize(t.size() - 2);
    if (groups[i] >= static_cast<int>(words.size())) words.push_back(t);
    else words.back() += t;
  }
  return words;
}

void merge_subwords(AttentionRecord& r) {
  if (r.image) throw UsageError("--merge-subwords: an image record has patches, not subword tokens");
  auto it = r.metadata.find("subwords");
  const std::string scheme = it == r.metadata.end() ? "" : it->second;
  std::map<std::string, std::vector<int>> groups;   // axis -> word of each token
  for (const auto& [axis, toks] : r.tokens) groups[axis] = word_groups(toks, scheme);
  bool any = false;
  for (auto& t : r.tensors) {
    auto gq = groups.find(t.query_axis), gk = groups.find(t.key_axis);
    if (gq == groups.end() || gk == groups.end()) continue;
    const std::vector<int>& q = gq->second;
    const std::vector<int>& k = gk->second;
    if (static_cast<int>(q.size()) != t.queries || static_cast<int>(k.size()) != t.keys) continue;
    const int Wq = q.empty() ? 0 : q.back() + 1, Wk = k.empty() ? 0 : k.back() + 1;
    std::vector<int> pieces(Wq, 0);
    for (int w : q) ++pieces[w];
    AttentionTensor m(t.name, t.heads, Wq, Wk, t.query_axis, t.key_axis);
    // m[h, wq, wk] = mean over queries of word wq of the sum over keys of word wk.
    for (int h = 0; h < t.heads; ++h)
      for (int i = 0; i < t.queries; ++i)
        for (int j = 0; j < t.keys; ++j) m.at(h, q[i], k[j]) += t.at(h, i, j) / pieces[q[i]];
    t = std::move(m);
    any = true;
  }
  if (!any) throw UsageError("--merge-subwords: no tensor has tokens on both axes");
  nlohmann::json j;
  for (auto& [axis, toks] : r.tokens) {
    j[axis] = groups[axis];
    toks = merge_tokens(toks, groups[axis]);
  }
  r.gradients.clear();
  r.relevance.clear();
  r.metadata["subword_groups"] = j.dump();
  r.metadata["merged_subwords"] = "attention summed over a word's key pieces, averaged over its query pieces";
}

}  // namespace attnviz
