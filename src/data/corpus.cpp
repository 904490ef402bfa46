// Parallel corpus files: TSV reader/writer with column selection and gold Pharaoh links, and the
// pre-tokenized `source ||| target` reader.
#include <attnviz/io/atomic_file.hpp>
#include <attnviz/data/corpus.hpp>
#include <attnviz/error.hpp>

#include <algorithm>
#include <charconv>
#include <numeric>
#include <random>

namespace attnviz {

bool ParallelCorpus::has_gold() const {
  return !pairs.empty() && std::all_of(pairs.begin(), pairs.end(), [](const SentencePair& p) { return p.gold.has_value(); });
}

void parse_columns(const std::string& spec, CorpusOptions& opt) {
  std::vector<int> cols;
  size_t i = 0;
  while (i <= spec.size()) {
    size_t j = spec.find(',', i);
    if (j == std::string::npos) j = spec.size();
    int v = 0;
    auto [p, ec] = std::from_chars(spec.data() + i, spec.data() + j, v);
    if (ec != std::errc() || p != spec.data() + j || v < 1)
      throw UsageError("--columns '" + spec + "': expected 1-based column numbers like 1,2 or 1,2,3");
    cols.push_back(v);
    i = j + 1;
  }
  if (cols.size() < 2 || cols.size() > 3)
    throw UsageError("--columns '" + spec + "': give source,target or source,target,gold");
  opt.source_column = cols[0];
  opt.target_column = cols[1];
  opt.gold_column = cols.size() == 3 ? cols[2] : 0;
  opt.gold_optional = false;
}

namespace {

std::vector<std::string_view> split_tabs(std::string_view line) {
  std::vector<std::string_view> f;
  size_t i = 0;
  while (true) {
    size_t j = line.find('\t', i);
    if (j == std::string_view::npos) {
      f.push_back(line.substr(i));
      break;
    }
    f.push_back(line.substr(i, j - i));
    i = j + 1;
  }
  return f;
}

std::string_view trim_cr(std::string_view s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

std::string line_at(int n) { return "line " + std::to_string(n); }

// Checks and converts gold links (1-based to 0-based when asked) against the sentence lengths.
void check_gold(Alignment& a, const SentencePair& p, const CorpusOptions& opt, const std::string& path, int line_no) {
  const int S = static_cast<int>(p.source.size()), T = static_cast<int>(p.target.size());
  // Read 0-based, would this line fit 1-based? Then a link past the end is a 1-based file.
  bool fits_one_based = !opt.one_indexed;
  for (const auto& l : a.links)
    if (l.source < 1 || l.target < 1 || l.source > S || l.target > T) fits_one_based = false;
  for (auto& l : a.links) {
    if (opt.one_indexed) {
      if (l.source < 1 || l.target < 1)
        throw InputError(path, line_at(line_no) + ": link index 0 in a 1-based alignment (" + opt.one_indexed_flag +
                                   "); is the gold 0-based?");
      --l.source, --l.target;
    }
    if (l.source >= S || l.target >= T)
      throw InputError(path, line_at(line_no) + ": gold link " + std::to_string(l.source) + "-" +
                                 std::to_string(l.target) + " is outside the sentence pair (" + std::to_string(S) +
                                 " source, " + std::to_string(T) + " target tokens)" +
                                 (fits_one_based ? "; the gold looks 1-based: pass " + opt.one_indexed_flag : ""));
  }
}

// The first space-separated word that the tokenizer splits (or drops): "'s" -> "' s". A gold
// column written for space-separated words then points at the wrong tokens. "" when none.
std::string first_resplit_word(std::string_view text, const TokenizerOptions& tok) {
  for (const auto& w : split_spaces(text)) {
    auto pieces = tokenize(w, tok);
    if (pieces.size() != 1) return "'" + w + "' -> " + join_tokens(pieces);
  }
  return "";
}

template <class Fn>
void for_each_line(const std::string& text, Fn fn) {
  size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    ++line_no;
    if (!fn(trim_cr(std::string_view(text).substr(pos, end - pos)), line_no)) return;
    pos = end + 1;
  }
}

bool is_bitext_text(const std::string& text) {
  bool result = false;
  for_each_line(text, [&](std::string_view line, int) {
    if (line.find_first_not_of(" \t") == std::string_view::npos) return true;
    result = line.find('\t') == std::string_view::npos && line.find(" ||| ") != std::string_view::npos;
    return false;
  });
  return result;
}

}  // namespace

ParallelCorpus read_corpus(const std::filesystem::path& path, const CorpusOptions& opt) {
  const std::string ps = path.string();
  std::string text = read_file(path);
  if (text.size() >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);  // UTF-8 BOM
  ParallelCorpus corpus;
  const bool bitext = is_bitext_text(text);
  std::size_t longest = 0;
  std::size_t resplit = 0;       // gold lines whose words the tokenizer splits differently from the spaces
  std::string resplit_example;
  auto tok = [&](std::string_view s) {
    return (bitext || opt.pretokenized) ? split_spaces(s) : tokenize(s, opt.tokenizer);
  };
  for_each_line(text, [&](std::string_view line, int line_no) {
    if (line.find_first_not_of(" \t") == std::string_view::npos) return true;
    if (!utf8_valid(line)) throw InputError(ps, line_at(line_no) + ": not valid UTF-8");
    SentencePair p;
    std::string_view gold;
    if (bitext) {
      size_t sep = line.find("|||");
      if (sep == std::string_view::npos) throw InputError(ps, line_at(line_no) + ": expected 'source ||| target'");
      p.source = tok(line.substr(0, sep));
      p.target = tok(line.substr(sep + 3));
    } else {
      auto f = split_tabs(line);
      const int need = std::max(opt.source_column, opt.target_column);
      if (static_cast<int>(f.size()) < need)
        throw InputError(ps, line_at(line_no) + ": expected at least " + std::to_string(need) +
                                 " tab-separated columns, found " + std::to_string(f.size()) +
                                 " (the format is source<TAB>target[<TAB>gold]; see --columns)");
      p.source = tok(f[opt.source_column - 1]);
      p.target = tok(f[opt.target_column - 1]);
      if (opt.gold_column > 0) {
        if (static_cast<int>(f.size()) >= opt.gold_column) gold = f[opt.gold_column - 1];
        else if (!opt.gold_optional)
          throw InputError(ps, line_at(line_no) + ": no gold column " + std::to_string(opt.gold_column));
      }
    }
    if (p.source.empty() || p.target.empty()) {
      ++corpus.dropped_empty;
      return true;
    }
    if (opt.max_tokens > 0 &&
        (static_cast<int>(p.source.size()) > opt.max_tokens || static_cast<int>(p.target.size()) > opt.max_tokens)) {
      ++corpus.dropped_long;
      longest = std::max({longest, p.source.size(), p.target.size()});
      return true;
    }
    if (!gold.empty() || (opt.gold_column > 0 && !opt.gold_optional)) {
      Alignment a;
      try {
        a = parse_pharaoh_line(gold, ps, line_no);
        if (opt.gold_all_sure)
          for (auto& l : a.links) l.sure = true;
      } catch (const InputError& e) {
        throw InputError(ps, e.reason() + (opt.gold_optional ? " (column 3 is read as gold; use --columns 1,2 to ignore it)" : ""));
      }
      if (!bitext && !opt.pretokenized) {
        auto f = split_tabs(line);
        std::string w = first_resplit_word(f[opt.source_column - 1], opt.tokenizer);
        if (w.empty()) w = first_resplit_word(f[opt.target_column - 1], opt.tokenizer);
        if (!w.empty() && resplit++ == 0) resplit_example = line_at(line_no) + ": " + w;
      }
      check_gold(a, p, opt, ps, line_no);
      p.gold = std::move(a);
    }
    corpus.pairs.push_back(std::move(p));
    return opt.max_pairs <= 0 || static_cast<int>(corpus.pairs.size()) < opt.max_pairs;
  });
  const std::size_t read = corpus.pairs.size() + corpus.dropped_long;
  const std::string long_why = std::to_string(corpus.dropped_long) + " of " + std::to_string(read) +
                               " pairs have a side longer than --max-tokens " + std::to_string(opt.max_tokens) +
                               " (the longest: " + std::to_string(longest) + " tokens)";
  if (corpus.pairs.empty()) {
    if (corpus.dropped_long) throw InputError(ps, "no sentence pairs left: " + long_why + "; raise --max-tokens, or 0 keeps all");
    throw InputError(ps, "no sentence pairs found");
  }
  if (corpus.dropped_long)
    corpus.notes.push_back(ps + ": skipped " + long_why + "; --max-tokens 0 keeps all");
  if (corpus.dropped_empty)
    corpus.notes.push_back(ps + ": skipped " + std::to_string(corpus.dropped_empty) +
                           " line(s) whose source or target has no tokens");
  // Gold indices count the tokenizer's tokens; a pre-tokenized file's gold counts its spaces.
  if (resplit)
    corpus.notes.push_back(ps + ": in " + std::to_string(resplit) + " line(s) with gold links the tokenizer splits words "
                           "differently from the spaces (" + resplit_example + "); the links are read against the "
                           "tokenizer's tokens: if the text is already tokenized and the gold counts its "
                           "space-separated words, pass --pretokenized");
  // A gold read 0-based that never uses index 0 on either side is a 1-based gold.
  if (!opt.one_indexed) {
    long links = 0;
    int min_s = 1, min_t = 1;
    for (const auto& p : corpus.pairs)
      if (p.gold)
        for (const auto& l : p.gold->links) ++links, min_s = std::min(min_s, l.source), min_t = std::min(min_t, l.target);
    if (links >= 3 && min_s >= 1 && min_t >= 1)
      corpus.notes.push_back(ps + ": the gold column is read as 0-based, but no link uses index 0 (" +
                             std::to_string(links) + " links): it looks 1-based; if it is, pass " + opt.one_indexed_flag);
  }
  return corpus;
}

void write_corpus_tsv(const std::filesystem::path& path, const ParallelCorpus& corpus) {
  std::string out;
  for (const auto& p : corpus.pairs) {
    out += join_tokens(p.source) + "\t" + join_tokens(p.target);
    if (p.gold) out += "\t" + to_pharaoh(*p.gold);
    out += "\n";
  }
  write_file_atomically(path, out);
}

std::vector<SentencePair> read_bitext(const std::filesystem::path& path) {
  const std::string ps = path.string();
  std::string text = read_file(path);
  std::vector<SentencePair> out;
  for_each_line(text, [&](std::string_view line, int line_no) {
    if (!utf8_valid(line)) throw InputError(ps, line_at(line_no) + ": not valid UTF-8");
    size_t sep = line.find("|||");
    if (sep == std::string_view::npos) throw InputError(ps, line_at(line_no) + ": expected 'source ||| target'");
    SentencePair p;
    p.source = split_spaces(line.substr(0, sep));
    p.target = split_spaces(line.substr(sep + 3));
    out.push_back(std::move(p));
    return true;
  });
  return out;
}

}  // namespace attnviz

namespace attnviz {

bool is_bitext_file(const std::filesystem::path& path) {
  std::string text = read_file(path);
  if (text.size() >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);
  return is_bitext_text(text);
}

CorpusSplit split_heldout(const ParallelCorpus& corpus, int count, std::optional<std::uint64_t> seed) {
  CorpusSplit out;
  const std::size_t n = corpus.size();
  if (count <= 0 || n <= 2 * static_cast<std::size_t>(count)) {
    out.train = corpus;
    return out;
  }
  std::vector<bool> held(n, false);
  if (!seed) {
    for (std::size_t i = n - count; i < n; ++i) held[i] = true;
  } else {
    // A seeded shuffle of the indices; the first `count` are held out. std::shuffle's output is
    // implementation-defined, so the Fisher-Yates loop is written out (same split on every libstdc++).
    std::vector<std::size_t> idx(n);
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    std::mt19937_64 rng(*seed);
    for (std::size_t i = n - 1; i > 0; --i) std::swap(idx[i], idx[rng() % (i + 1)]);
    for (int k = 0; k < count; ++k) held[idx[k]] = true;
  }
  for (std::size_t i = 0; i < n; ++i) (held[i] ? out.held : out.train).pairs.push_back(corpus.pairs[i]);
  return out;
}

std::vector<int> parse_pair_selection(const std::vector<std::string>& spec, std::size_t n) {
  std::vector<int> out;
  if (spec.size() == 1 && spec[0] == "all") {
    for (std::size_t i = 0; i < n; ++i) out.push_back(static_cast<int>(i));
    return out;
  }
  for (const auto& s : spec) {
    int v = -1;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v < 0)
      throw UsageError("--from-corpus '" + s + "': expected 0-based pair indices (e.g. 0,3,7) or 'all'");
    if (static_cast<std::size_t>(v) >= n)
      throw UsageError("--from-corpus " + s + ": the corpus has " + std::to_string(n) + " pairs (0.." +
                       std::to_string(n - 1) + ")");
    out.push_back(v);
  }
  return out;
}

}  // namespace attnviz
