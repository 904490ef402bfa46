// Text classification data: fortunes reader, label<TAB>text TSV io, word tokens, stratified split.
#include <attnviz/io/atomic_file.hpp>
#include <attnviz/error.hpp>
#include <attnviz/data/fortunes.hpp>
#include <attnviz/text/tokenizer.hpp>

#include <algorithm>
#include <cmath>
#include <map>

namespace attnviz {

namespace {

// Byte offset of the first invalid UTF-8 sequence, or npos.
std::size_t utf8_error(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    int n = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : -1;
    if (n < 0) return i;
    for (int k = 1; k <= n; ++k)
      if (i + k >= s.size() || (static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return i;
    i += n + 1;
  }
  return std::string_view::npos;
}

bool ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Collapses runs of whitespace to one space and trims both ends.
std::string collapse_spaces(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool pending = false;
  for (char c : s) {
    if (ascii_space(c)) {
      pending = !out.empty();
    } else {
      if (pending) out += ' ';
      pending = false;
      out += c;
    }
  }
  return out;
}

std::string_view rstrip_cr(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
  return line;
}

// "\t\t-- Author" or "   -- Author": an indented line whose first non-space characters are "--".
bool is_attribution(std::string_view line) {
  std::size_t i = 0;
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  const bool indented = i > 0 && (line[0] == '\t' || i >= 2);
  return indented && line.substr(i).starts_with("--");
}

// splitmix64: a tiny seeded generator for the split (the data layer does not need the engine).
struct SplitMix {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
};

}  // namespace

void TextDataset::add(const std::string& label, const std::string& text) {
  auto it = std::find(labels.begin(), labels.end(), label);
  int c = static_cast<int>(it - labels.begin());
  if (it == labels.end()) labels.push_back(label);
  texts.push_back(text);
  y.push_back(c);
}

std::vector<int> TextDataset::class_counts() const {
  std::vector<int> n(labels.size(), 0);
  for (int c : y) ++n[c];
  return n;
}

std::vector<std::string> default_fortune_categories() { return {"computers", "science", "politics", "law", "food"}; }

std::vector<std::string> parse_fortune_entries(std::string_view content, const std::string& path) {
  if (auto bad = utf8_error(content); bad != std::string_view::npos)
    throw InputError(path, at_offset(bad, "UTF-8 text", "an invalid byte sequence"));
  std::vector<std::string> entries;
  std::string cur;
  bool dropping = false;  // after an attribution line, until the next '%'
  auto flush = [&] {
    std::string e = collapse_spaces(cur);
    if (!e.empty()) entries.push_back(std::move(e));
    cur.clear();
    dropping = false;
  };
  std::size_t pos = 0;
  while (pos <= content.size()) {
    std::size_t nl = content.find('\n', pos);
    if (nl == std::string_view::npos) nl = content.size();
    std::string_view line = rstrip_cr(content.substr(pos, nl - pos));
    if (line == "%") {
      flush();
    } else if (!dropping) {
      if (is_attribution(line)) {
        dropping = true;
      } else {
        cur.append(line);
        cur += '\n';
      }
    }
    pos = nl + 1;
  }
  flush();
  return entries;
}

TextDataset load_fortunes(const FortunesOptions& opt) {
  if (opt.categories.empty()) throw UsageError("fortunes: no categories given");
  TextDataset ds;
  for (const auto& cat : opt.categories) {
    std::filesystem::path p = opt.dir / cat;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(p, ec))
      throw InputError(p.string(), "no such fortune file (install the Debian package 'fortunes', or pick a "
                                   "category that exists there)");
    std::vector<std::string> kept;
    for (auto& e : parse_fortune_entries(read_file(p), p.string())) {
      int words = 0;
      for (const auto& t : word_tokens(e)) words += is_word_token(t);
      if (words >= opt.min_words && words <= opt.max_words) kept.push_back(std::move(e));
    }
    if (kept.empty()) throw InputError(p.string(), "no entries of the requested length");
    ds.labels.push_back(cat);
    const std::size_t n = kept.size();
    const std::size_t take = opt.max_per_class > 0 ? std::min<std::size_t>(n, opt.max_per_class) : n;
    // Evenly spaced over the (alphabetical) file, so the cap does not favour early letters.
    for (std::size_t i = 0; i < take; ++i) ds.add(cat, kept[i * n / take]);
  }
  return ds;
}

TextDataset parse_text_tsv(std::string_view content, const std::string& path) {
  if (auto bad = utf8_error(content); bad != std::string_view::npos)
    throw InputError(path, at_offset(bad, "UTF-8 text", "an invalid byte sequence"));
  if (content.starts_with("\xEF\xBB\xBF")) content.remove_prefix(3);  // BOM
  TextDataset ds;
  std::size_t pos = 0;
  int line_no = 0;
  while (pos < content.size()) {
    std::size_t nl = content.find('\n', pos);
    if (nl == std::string_view::npos) nl = content.size();
    std::string_view line = content.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = nl + 1;
    ++line_no;
    if (collapse_spaces(line).empty() || line.starts_with("#")) continue;
    std::size_t tab = line.find('\t');
    if (tab == std::string_view::npos)
      throw InputError(path, "line " + std::to_string(line_no) + ": expected 'label<TAB>text', found no tab");
    std::string label = collapse_spaces(line.substr(0, tab));
    std::string text = collapse_spaces(line.substr(tab + 1));
    if (label.empty()) throw InputError(path, "line " + std::to_string(line_no) + ": empty label");
    if (text.empty()) throw InputError(path, "line " + std::to_string(line_no) + ": empty text");
    ds.add(label, text);
  }
  if (ds.size() == 0) throw InputError(path, "no examples (expected lines 'label<TAB>text')");
  return ds;
}

TextDataset read_text_tsv(const std::filesystem::path& path) { return parse_text_tsv(read_file(path), path.string()); }

std::string format_text_tsv(const TextDataset& ds) {
  std::string out;
  for (std::size_t i = 0; i < ds.size(); ++i) {
    out += collapse_spaces(ds.labels[ds.y[i]]);
    out += '\t';
    out += collapse_spaces(ds.texts[i]);
    out += '\n';
  }
  return out;
}

void write_text_tsv(const std::filesystem::path& path, const TextDataset& ds) {
  write_file_atomically(path, format_text_tsv(ds));
}

std::vector<std::string> word_tokens(std::string_view text) {
  return tokenize(text, TokenizerOptions{.lowercase = false, .split_punctuation = true});
}

bool is_word_token(std::string_view token) {
  std::size_t pos = 0;
  char32_t cp = 0;
  while (pos < token.size()) {
    if (utf8_next(token, pos, cp) && !attnviz::is_space(cp) && !is_punctuation(cp)) return true;
  }
  return false;
}

std::string fold_case(std::string_view token) {
  std::string out;
  std::size_t pos = 0;
  char32_t cp = 0;
  while (pos < token.size()) {
    std::size_t start = pos;
    if (utf8_next(token, pos, cp)) utf8_append(out, to_lower(cp));
    else out.append(token.substr(start, pos - start));
  }
  return out;
}

TextSplit stratified_split(const TextDataset& ds, double test_fraction, std::uint64_t seed) {
  if (!(test_fraction > 0.0 && test_fraction < 1.0))
    throw UsageError("test fraction must be between 0 and 1 (exclusive)");
  TextSplit sp;
  sp.train.labels = sp.test.labels = ds.labels;
  std::vector<std::vector<int>> by_class(ds.labels.size());
  for (std::size_t i = 0; i < ds.size(); ++i) by_class[ds.y[i]].push_back(static_cast<int>(i));
  std::vector<char> in_test(ds.size(), 0);
  SplitMix rng{seed * 0x2545F4914F6CDD1Dull + 0x1234567ull};
  for (auto& idx : by_class) {
    for (std::size_t k = idx.size(); k > 1; --k) std::swap(idx[k - 1], idx[rng.below(k)]);
    std::size_t nt = static_cast<std::size_t>(std::lround(test_fraction * static_cast<double>(idx.size())));
    if (idx.size() >= 2) nt = std::clamp<std::size_t>(nt, 1, idx.size() - 1);
    else nt = 0;
    for (std::size_t k = 0; k < nt; ++k) in_test[idx[k]] = 1;
  }
  // Keep the original order inside each part (stable, readable TSV output).
  for (std::size_t i = 0; i < ds.size(); ++i) {
    auto& part = in_test[i] ? sp.test : sp.train;
    part.texts.push_back(ds.texts[i]);
    part.y.push_back(ds.y[i]);
  }
  return sp;
}

}  // namespace attnviz
