// Parallel corpora: sentence pairs with optional gold alignments, the UTF-8 TSV reader/writer
// (`source<TAB>target[<TAB>gold]`, --columns), the `source ||| target` reader, and the built-in
// grammar generator with exact gold alignments.
#pragma once
#include <attnviz/io/pharaoh.hpp>
#include <attnviz/text/tokenizer.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace attnviz {

struct SentencePair {
  std::vector<std::string> source, target;   // tokens
  std::optional<Alignment> gold;             // source index i, target index j (0-based)
};

struct ParallelCorpus {
  std::vector<SentencePair> pairs;
  // What read_corpus left out and why, and hints on the gold's index base: one line each, for the
  // caller to print (library code never prints).
  std::vector<std::string> notes;
  std::size_t dropped_long = 0;    // pairs with a side longer than max_tokens
  std::size_t dropped_empty = 0;   // lines whose source or target has no tokens
  std::size_t size() const { return pairs.size(); }
  bool has_gold() const;   // true if every pair has a gold alignment
};

struct CorpusOptions {
  // 1-based columns: source, target and (optionally, 0 = none) gold. Default reads a gold column 3
  // when the line has one; with an explicit --columns list of two, gold is never read.
  int source_column = 1, target_column = 2, gold_column = 3;
  bool gold_optional = true;      // the default column 3 is read only when present and non-empty
  TokenizerOptions tokenizer;     // how the text columns are tokenized
  bool pretokenized = false;      // split on ASCII spaces only (gold indices refer to those tokens)
  bool one_indexed = false;       // gold links are 1-based
  bool gold_all_sure = false;     // every gold link counts as sure, possible ones too (aer.py --allSure)
  std::string one_indexed_flag = "--gold-one-indexed";  // named in the hints when the gold looks 1-based
  int max_pairs = 0;              // stop after this many pairs (0 = all)
  int max_tokens = 0;             // skip pairs with a side longer than this (0 = keep all)
};

// Parses "1,2" or "1,2,3" into the column fields (throws UsageError).
void parse_columns(const std::string& spec, CorpusOptions& opt);

// Reads a UTF-8 TSV file (or, when its first non-empty line has " ||| " and no tab, the
// pre-tokenized `source ||| target` format of fast_align / awesome-align). Empty lines and
// lines whose source or target is empty are skipped, and so are pairs longer than max_tokens
// (both counted, with a note). Throws InputError naming the file and line: invalid UTF-8, missing
// column, bad Pharaoh link, link index outside the sentence. Gold indices count the tokenizer's
// tokens (space-separated words with pretokenized); lines where the two differ ("'s" -> "' s")
// get a note naming --pretokenized, since a pre-tokenized file's gold would point at wrong words.
ParallelCorpus read_corpus(const std::filesystem::path& path, const CorpusOptions& opt = {});

// True when the file is in the `source ||| target` format (already tokenized: split on spaces).
bool is_bitext_file(const std::filesystem::path& path);

// Held-out split of a corpus: `count` pairs, either the file's last `count` lines (no seed; on a
// length-sorted corpus these are the longest) or `count` pairs drawn at random with `seed`. Both
// parts keep the file's order. No pairs are held out when count <= 0 or the corpus has no more
// than 2 * count pairs.
struct CorpusSplit {
  ParallelCorpus train, held;
};
CorpusSplit split_heldout(const ParallelCorpus& corpus, int count, std::optional<std::uint64_t> seed = std::nullopt);

// Pair indices from "--from-corpus 0,3,7" or "--from-corpus all" (every pair), checked against the
// corpus size `n` (UsageError naming the index and the size).
std::vector<int> parse_pair_selection(const std::vector<std::string>& spec, std::size_t n);

// Writes `source<TAB>target<TAB>gold` (tokens joined by spaces), atomically.
void write_corpus_tsv(const std::filesystem::path& path, const ParallelCorpus& corpus);

// Reads `source ||| target` lines (split on ASCII spaces only): the tokens of each pair.
std::vector<SentencePair> read_bitext(const std::filesystem::path& path);

// ---- built-in generator ----------------------------------------------------------------------

enum class SyntheticSplit { All, Train, Test };

struct SyntheticOptions {
  int count = 1000;
  std::uint64_t seed = 1;
  // Train/Test: a sentence belongs to the test split when a hash of its source text says so
  // (about 1 in 10), so the splits never share a sentence whatever the seeds and sizes.
  SyntheticSplit split = SyntheticSplit::All;
};

// `count` pairs from the built-in grammar (English-like source, a made-up verb-second target
// language), deterministic for a seed. Gold: sure links, plus possible links where the grammar
// makes them ambiguous (a dropped article, the auxiliary "does" of a negation).
ParallelCorpus generate_synthetic(const SyntheticOptions& opt);

}  // namespace attnviz
