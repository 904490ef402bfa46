// Unicode-aware word tokenizer (whitespace + punctuation split, one token per CJK ideograph,
// optional lowercasing), small UTF-8 helpers, and the Vocabulary that maps tokens to ids.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace attnviz {

// ---- UTF-8 ---------------------------------------------------------------------------------

// Decodes the code point at s[pos] and advances pos. Returns false (and advances by one byte)
// on a malformed sequence (bad lead byte, truncated, overlong, surrogate, > U+10FFFF).
bool utf8_next(std::string_view s, size_t& pos, char32_t& cp);
void utf8_append(std::string& out, char32_t cp);
bool utf8_valid(std::string_view s);
size_t utf8_length(std::string_view s);  // code points (malformed bytes count one each)

// ---- character classes (hand-written tables, see tokenizer.cpp for why) --------------------
bool is_space(char32_t c);
bool is_punctuation(char32_t c);      // punctuation and symbols: split off as their own token
bool is_cjk_ideograph(char32_t c);    // Han ideographs (each one is its own token)
char32_t to_lower(char32_t c);        // Unicode simple lowercase mapping (utf8proc): Ș -> ș, Ω -> ω, Ա -> ա

// Splits `text` at white space into words, lower-casing when asked: a character for which `skip(c)`
// holds is dropped, one for which `alone(c)` holds ends the word and is a token of its own. Words go
// to `on_word`, characters alone to `on_alone` (each gets a std::string&&). Malformed bytes arrive as
// U+FFFD. The word splitter of every tokenizer (the built-in one, BERT's basic tokenization).
template <class Skip, class Alone, class OnWord, class OnAlone>
void split_at_spaces(std::string_view text, bool lowercase, Skip skip, Alone alone, OnWord on_word, OnAlone on_alone) {
  std::string word;
  size_t pos = 0;
  char32_t c;
  while (pos < text.size()) {
    utf8_next(text, pos, c);
    if (skip(c)) continue;
    if (is_space(c)) {
      if (!word.empty()) on_word(std::move(word)), word.clear();
      continue;
    }
    if (lowercase) c = to_lower(c);
    if (alone(c)) {
      if (!word.empty()) on_word(std::move(word)), word.clear();
      std::string one;
      utf8_append(one, c);
      on_alone(std::move(one));
      continue;
    }
    utf8_append(word, c);
  }
  if (!word.empty()) on_word(std::move(word));
}

// ---- normalization (utf8proc) ----------------------------------------------------------------

enum class Normalization {
  None,
  NFC,      // canonical composition: "s" + U+0326 -> "ș"
  NFKC,     // compatibility composition too: "ﬁ" -> "fi", fullwidth "Ａ" -> "A"
  NFKC_RO,  // NFKC, and Romanian's legacy cedilla ş ţ (U+015F, U+0163) -> comma-below ș ț (U+0219, U+021B)
};
Normalization parse_normalization(const std::string& name);  // none | nfc | nfkc | nfkc-ro (UsageError)
const char* normalization_name(Normalization n);

// Normalizes UTF-8 text (malformed bytes become U+FFFD first); strip_diacritics removes combining
// marks after canonical decomposition ("ș" -> "s", "é" -> "e").
std::string normalize_text(std::string_view text, Normalization n, bool strip_diacritics = false);

// ---- tokenizer -------------------------------------------------------------------------------

struct TokenizerOptions {
  bool lowercase = false;
  bool split_punctuation = true;  // false: split on whitespace only (punctuation stays attached)
  Normalization normalize = Normalization::None;  // applied before splitting
  bool strip_diacritics = false;                   // "Ștefan" -> "Stefan"
};

// "Hello, world!" -> ["Hello", ",", "world", "!"]; "我喜欢猫。" -> ["我", "喜", "欢", "猫", "。"].
// Runs of letters/digits/marks form one token; every punctuation or symbol character is its own
// token; every CJK ideograph is its own token; malformed UTF-8 bytes become U+FFFD.
std::vector<std::string> tokenize(std::string_view text, const TokenizerOptions& opt = {});

// Splits on ASCII spaces (and tabs) only: the pre-tokenized "source ||| target" convention.
std::vector<std::string> split_spaces(std::string_view text);

// Joins tokens with single spaces.
std::string join_tokens(const std::vector<std::string>& tokens);

// ---- vocabulary ------------------------------------------------------------------------------

struct VocabOptions {
  int min_count = 1;   // tokens seen fewer times map to <unk>
  int max_size = 0;    // 0 = no limit (ids above are dropped by frequency, ties by token)
};

class Vocabulary {
 public:
  static constexpr int kPad = 0, kUnk = 1, kBos = 2, kEos = 3;
  static constexpr int kSpecials = 4;

  Vocabulary();  // just the four specials: <pad> <unk> <bos> <eos>
  // Counts tokens over all sentences; keeps those with count >= min_count, most frequent first
  // (ties broken by byte order, so the result is deterministic).
  static Vocabulary build(const std::vector<std::vector<std::string>>& sentences, const VocabOptions& opt = {});
  explicit Vocabulary(std::vector<std::string> tokens);  // tokens[0..3] must be the specials

  int size() const { return static_cast<int>(tokens_.size()); }
  int id(const std::string& token) const;  // kUnk when unknown
  const std::string& token(int id) const;  // "<unk>" for out-of-range ids
  bool contains(const std::string& token) const { return index_.count(token) > 0; }
  const std::vector<std::string>& tokens() const { return tokens_; }

  // Token ids, optionally wrapped in <bos> ... <eos>.
  std::vector<int> encode(const std::vector<std::string>& tokens, bool bos = false, bool eos = false) const;
  // Tokens of ids, stopping at the first <eos> and skipping <pad>/<bos>.
  std::vector<std::string> decode(const std::vector<int>& ids) const;

  // JSON array of token strings (stored in a model file's metadata).
  std::string to_json() const;
  // Throws InputError(path, ...) if the JSON is not an array of strings starting with the specials.
  static Vocabulary from_json(const std::string& json, const std::string& path);

 private:
  std::vector<std::string> tokens_;
  std::map<std::string, int> index_;
};

}  // namespace attnviz
