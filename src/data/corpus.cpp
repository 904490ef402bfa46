// Parallel corpus files: TSV reader/writer with column selection and gold Pharaoh links, and the
// pre-tokenized `source ||| target` reader.
#include <attnviz/io/atomic_file.hpp>
#include <attnviz/data/corpus.hpp>
#include <attnviz/error.hpp>

#include <algorithm>
#include <charconv>

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
void check_gold(Alignment& a, const SentencePair& p, bool one_indexed, const std::string& path, int line_no) {
  for (auto& l : a.links) {
    if (one_indexed) {
      if (l.source < 1 || l.target < 1)
        throw InputError(path, line_at(line_no) + ": link index 0 in a 1-based alignment (--one-indexed)");
      --l.source, --l.target;
    }
    if (l.source >= static_cast<int>(p.source.size()) || l.target >= static_cast<int>(p.target.size()))
      throw InputError(path, line_at(line_no) + ": gold link " + std::to_string(l.source) + "-" +
                                 std::to_string(l.target) + " is outside the sentence pair (" +
                                 std::to_string(p.source.size()) + " source, " + std::to_string(p.target.size()) +
                                 " target tokens)");
  }
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

bool is_bitext(const std::string& text) {
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
  const bool bitext = is_bitext(text);
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
    if (p.source.empty() || p.target.empty()) return true;
    if (opt.max_tokens > 0 &&
        (static_cast<int>(p.source.size()) > opt.max_tokens || static_cast<int>(p.target.size()) > opt.max_tokens))
      return true;
    if (!gold.empty() || (opt.gold_column > 0 && !opt.gold_optional)) {
      Alignment a;
      try {
        a = parse_pharaoh_line(gold, ps, line_no);
      } catch (const InputError& e) {
        throw InputError(ps, e.reason() + (opt.gold_optional ? " (column 3 is read as gold; use --columns 1,2 to ignore it)" : ""));
      }
      check_gold(a, p, opt.one_indexed, ps, line_no);
      p.gold = std::move(a);
    }
    corpus.pairs.push_back(std::move(p));
    return opt.max_pairs <= 0 || static_cast<int>(corpus.pairs.size()) < opt.max_pairs;
  });
  if (corpus.pairs.empty()) throw InputError(ps, "no sentence pairs found");
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
