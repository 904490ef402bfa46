// Byte-pair encoding learned from a corpus (Sennrich, Haddow and Birch 2016, "Neural Machine
// Translation of Rare Words with Subword Units"): merges of symbol pairs, applied to words.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace attnviz {

// Pieces follow subword-nmt's convention: every piece but a word's last ends in "@@"
// ("unbelievable" -> "un@@ believ@@ able"), so joining "@@ " away gives the words back and a
// record's pieces merge into words by the same rule (record/subwords.hpp's word_groups and
// merge_tokens, scheme "bpe@@", which also join pieces back into words).
class Bpe {
 public:
  using Pair = std::pair<std::string, std::string>;

  Bpe() = default;   // no merges: every word stays whole (apply() is the identity)
  explicit Bpe(std::vector<Pair> merges);

  // Learns up to `merges` merges from the words of `sentences` (Sennrich et al.'s algorithm 1):
  // every word starts as its characters (UTF-8 code points), the last one marked as word-final
  // ("</w>"); repeatedly the most frequent adjacent pair (counted over word frequencies; ties: the
  // smaller pair in byte order) becomes one symbol. Stops early when no pair occurs twice.
  static Bpe learn(const std::vector<std::vector<std::string>>& sentences, int merges);

  bool empty() const { return merges_.empty(); }
  const std::vector<Pair>& merges() const { return merges_; }

  // The pieces of one word, "@@" on all but the last: merges applied lowest rank first.
  std::vector<std::string> segment(const std::string& word) const;
  // Every word segmented, in order. Without merges, the words unchanged.
  std::vector<std::string> apply(const std::vector<std::string>& words) const;

  // JSON array of [left, right] pairs, in merge order (stored in a model file's metadata).
  std::string to_json() const;
  // Throws InputError(path, ...) unless the JSON is an array of two-string arrays.
  static Bpe from_json(const std::string& json, const std::string& path);

 private:
  std::vector<Pair> merges_;
  std::vector<std::pair<Pair, int>> rank_sorted_;   // (pair, rank) sorted by pair, for lookup
  int rank(const std::string& a, const std::string& b) const;   // -1 when not a merge
};

}  // namespace attnviz
