// Labelled text data for text classification: the `fortunes` package reader (the default
// dataset), the UTF-8 `label<TAB>text` TSV reader/writer, word tokenization and a stratified split.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace attnviz {

// A labelled text collection. labels[y[i]] is the class name of texts[i].
struct TextDataset {
  std::vector<std::string> labels;  // class names, in first-seen order (fortunes: category order)
  std::vector<std::string> texts;   // [N] one entry each, whitespace collapsed to single spaces
  std::vector<int> y;               // [N] class index into labels
  std::size_t size() const { return texts.size(); }
  void add(const std::string& label, const std::string& text);  // adds the class if new
  std::vector<int> class_counts() const;                        // [labels.size()]
};

// The fortunes categories used by default: five topics that are clearly different.
std::vector<std::string> default_fortune_categories();  // computers, science, politics, law, food

struct FortunesOptions {
  std::filesystem::path dir = "/usr/share/games/fortunes";  // Debian package `fortunes`
  std::vector<std::string> categories = default_fortune_categories();
  int min_words = 3;        // entries with fewer word tokens are dropped
  int max_words = 60;       // ... and with more (long stories make poor highlighted-text figures)
  int max_per_class = 0;    // cap per category (evenly spaced over the file; 0 = no cap)
};

// Splits one fortune file into entries. Entries are separated by lines holding only `%`;
// attribution lines (indented, starting with "--", e.g. "\t\t-- Mark Twain") and everything
// after them in the entry are dropped, so the label has to be read from the quotation itself;
// whitespace (newlines, tabs) is collapsed to single spaces; empty entries are skipped.
// `path` is only used in error messages (invalid UTF-8 throws InputError).
std::vector<std::string> parse_fortune_entries(std::string_view content, const std::string& path);

// Reads the chosen categories from opt.dir. Throws InputError naming the missing file (and the
// Debian package to install) when a category is absent.
TextDataset load_fortunes(const FortunesOptions& opt = {});

// TSV: one example per line, `label<TAB>text`, UTF-8. Empty lines and lines starting with '#'
// are skipped. Throws InputError(path, "line N: ...") on a line without a tab, an empty label or
// text, or invalid UTF-8.
TextDataset parse_text_tsv(std::string_view content, const std::string& path);
TextDataset read_text_tsv(const std::filesystem::path& path);
std::string format_text_tsv(const TextDataset& ds);  // tabs/newlines inside texts become spaces
void write_text_tsv(const std::filesystem::path& path, const TextDataset& ds);  // atomic

// Word tokens for display and for the model: the project tokenizer (attnviz/tokenizer.hpp) with
// case kept and punctuation split ("milk's," -> "milk", "'", "s", ","; one token per CJK ideograph).
std::vector<std::string> word_tokens(std::string_view text);
// True if the token holds a character that is neither punctuation nor space.
bool is_word_token(std::string_view token);
// Lowercase (ASCII, Latin-1/Extended-A, Greek, Cyrillic): the vocabulary key of a token.
std::string fold_case(std::string_view token);

struct TextSplit {
  TextDataset train, test;
};
// Stratified split: within each class, a seeded shuffle puts round(test_fraction * n_c) examples
// (at least 1 when the class has 2 or more) into test. Same seed, same split. Labels keep their order.
TextSplit stratified_split(const TextDataset& ds, double test_fraction, std::uint64_t seed);

}  // namespace attnviz
