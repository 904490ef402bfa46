// Word tokenizer, UTF-8 helpers, character classes, Unicode case mapping and normalization
// (utf8proc), and the token Vocabulary.
//
// Case mapping and NFC/NFKC/diacritic stripping come from utf8proc (Debian libutf8proc-dev): a
// hand-written lowercase table missed letters outside Latin-1/Extended-A (Romanian Ș Ț stayed upper
// case). The three splitting questions (is this a space, punctuation, a Han ideograph?) stay
// hand-written ranges: the Unicode blocks that matter for the text this tool sees (Latin, Greek,
// Cyrillic, CJK); characters outside them count as letters, the safe default for a word tokenizer
// (they stay inside words instead of being split off).
#include <attnviz/error.hpp>
#include <attnviz/text/tokenizer.hpp>

#include <nlohmann/json.hpp>
#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <unordered_map>

namespace attnviz {

// ---- UTF-8 ---------------------------------------------------------------------------------

bool utf8_next(std::string_view s, size_t& pos, char32_t& cp) {
  const auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = b(pos);
  if (c < 0x80) {
    cp = c;
    ++pos;
    return true;
  }
  int n;
  char32_t v, min;
  if ((c & 0xE0) == 0xC0) n = 1, v = c & 0x1F, min = 0x80;
  else if ((c & 0xF0) == 0xE0) n = 2, v = c & 0x0F, min = 0x800;
  else if ((c & 0xF8) == 0xF0) n = 3, v = c & 0x07, min = 0x10000;
  else {
    cp = 0xFFFD;
    ++pos;
    return false;
  }
  if (pos + n >= s.size()) {  // truncated: the last continuation byte would be s[pos + n]
    cp = 0xFFFD;
    ++pos;
    return false;
  }
  for (int i = 1; i <= n; ++i) {
    if ((b(pos + i) & 0xC0) != 0x80) {
      cp = 0xFFFD;
      ++pos;
      return false;
    }
    v = (v << 6) | (b(pos + i) & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
    cp = 0xFFFD;
    ++pos;
    return false;
  }
  cp = v;
  pos += n + 1;
  return true;
}

void utf8_append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool utf8_valid(std::string_view s) {
  size_t pos = 0;
  char32_t cp;
  while (pos < s.size())
    if (!utf8_next(s, pos, cp)) return false;
  return true;
}

size_t utf8_length(std::string_view s) {
  size_t pos = 0, n = 0;
  char32_t cp;
  while (pos < s.size()) utf8_next(s, pos, cp), ++n;
  return n;
}

// ---- character classes -----------------------------------------------------------------------

bool is_space(char32_t c) {
  return c == ' ' || (c >= 0x09 && c <= 0x0D) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200B) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000 || c == 0xFEFF;
}

bool is_punctuation(char32_t c) {
  if (c < 0x80) return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
                       (c >= 0x7B && c <= 0x7E);
  if (c >= 0xA1 && c <= 0xBF) return c != 0xAA && c != 0xB2 && c != 0xB3 && c != 0xB5 && c != 0xB9 && c != 0xBA &&
                                     c != 0xBC && c != 0xBD && c != 0xBE;  // ¡ « » ¿ § ° ... (not ª ² µ º ¼)
  if (c == 0xD7 || c == 0xF7) return true;                                 // × ÷
  if (c == 0x37E || c == 0x387) return true;                               // Greek question mark, ano teleia
  if (c >= 0x55A && c <= 0x55F) return true;                               // Armenian punctuation
  if (c == 0x589 || c == 0x5BE || c == 0x5C0 || c == 0x5C3 || c == 0x5F3 || c == 0x5F4) return true;
  if (c == 0x60C || c == 0x61B || c == 0x61F || c == 0x66A || c == 0x66B || c == 0x66C || c == 0x6D4) return true;
  if (c == 0x964 || c == 0x965 || c == 0xE5A || c == 0xE5B) return true;   // Devanagari danda, Thai
  if (c >= 0x2010 && c <= 0x2027) return true;                             // dashes, quotes, bullets, ellipsis
  if (c >= 0x2030 && c <= 0x205E) return true;                             // per mille, primes, ‹ › ...
  if (c >= 0x20A0 && c <= 0x20CF) return true;                             // currency signs
  if (c >= 0x2100 && c <= 0x214F) return false;                            // letterlike symbols stay letters
  if (c >= 0x2190 && c <= 0x2BFF) return true;                             // arrows, math, box drawing, shapes
  if (c >= 0x2E00 && c <= 0x2E7F) return true;                             // supplemental punctuation
  if (c >= 0x3001 && c <= 0x3003) return true;                             // 、。〃
  if (c >= 0x3008 && c <= 0x3011) return true;                             // 〈〉《》「」『』【】
  if (c >= 0x3014 && c <= 0x301F) return true;                             // 〔〕〖〗〘〙〚〛〜〝〞〟
  if (c == 0x3030 || c == 0x303D || c == 0x30FB) return true;              // 〰 〽 ・
  if (c >= 0xFE10 && c <= 0xFE19) return true;                             // vertical forms
  if (c >= 0xFE30 && c <= 0xFE6B) return true;                             // CJK compatibility / small forms
  if (c >= 0xFF01 && c <= 0xFF0F) return true;                             // fullwidth ！＂＃...／
  if (c >= 0xFF1A && c <= 0xFF20) return true;                             // ：；＜＝＞？＠
  if (c >= 0xFF3B && c <= 0xFF40) return true;                             // ［＼］＾＿｀
  if (c >= 0xFF5B && c <= 0xFF65) return true;                             // ｛｜｝～ and halfwidth 。「」、・
  if (c >= 0x1F000 && c <= 0x1FAFF) return true;                           // emoji and pictographs
  return false;
}

bool is_cjk_ideograph(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) ||    // CJK Unified Ideographs
         (c >= 0x3400 && c <= 0x4DBF) ||    // Extension A
         (c >= 0xF900 && c <= 0xFAFF) ||    // Compatibility Ideographs
         (c >= 0x3005 && c <= 0x3007) ||    // 々 〆 〇
         (c >= 0x20000 && c <= 0x2FA1F) ||  // Extensions B-F, compatibility supplement
         (c >= 0x30000 && c <= 0x323AF);    // Extensions G-H
}

char32_t to_lower(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
}

// ---- normalization ---------------------------------------------------------------------------

Normalization parse_normalization(const std::string& name) {
  if (name == "none") return Normalization::None;
  if (name == "nfc") return Normalization::NFC;
  if (name == "nfkc") return Normalization::NFKC;
  if (name == "nfkc-ro") return Normalization::NFKC_RO;
  throw UsageError("unknown normalization '" + name + "' (expected none, nfc, nfkc or nfkc-ro)");
}

const char* normalization_name(Normalization n) {
  switch (n) {
    case Normalization::None: return "none";
    case Normalization::NFC: return "nfc";
    case Normalization::NFKC: return "nfkc";
    case Normalization::NFKC_RO: return "nfkc-ro";
  }
  return "none";
}

std::string normalize_text(std::string_view text, Normalization n, bool strip_diacritics) {
  if (n == Normalization::None && !strip_diacritics) return std::string(text);
  // utf8proc refuses malformed input: re-encode it with U+FFFD first, as the tokenizer does.
  std::string clean;
  clean.reserve(text.size());
  size_t pos = 0;
  char32_t cp;
  while (pos < text.size()) utf8_next(text, pos, cp), utf8_append(clean, cp);
  int flags = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
  if (n == Normalization::NFKC || n == Normalization::NFKC_RO) flags |= UTF8PROC_COMPAT;
  if (strip_diacritics) flags |= UTF8PROC_STRIPMARK;  // decompose, drop combining marks, recompose
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t len = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(clean.data()),
                                            static_cast<utf8proc_ssize_t>(clean.size()), &out,
                                            static_cast<utf8proc_option_t>(flags));
  if (len < 0) throw InputError("", std::string("Unicode normalization failed: ") + utf8proc_errmsg(len));
  std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(len));
  std::free(out);
  if (n == Normalization::NFKC_RO) {
    // Legacy Romanian encodings (ISO 8859-2 and early Windows fonts) had only the cedilla forms.
    std::string ro;
    pos = 0;
    while (pos < result.size()) {
      utf8_next(result, pos, cp);
      if (cp == 0x15E) cp = 0x218;
      else if (cp == 0x15F) cp = 0x219;
      else if (cp == 0x162) cp = 0x21A;
      else if (cp == 0x163) cp = 0x21B;
      utf8_append(ro, cp);
    }
    result = std::move(ro);
  }
  return result;
}

// ---- tokenizer -------------------------------------------------------------------------------

std::vector<std::string> tokenize(std::string_view input, const TokenizerOptions& opt) {
  std::string normalized;
  std::string_view text = input;
  if (opt.normalize != Normalization::None || opt.strip_diacritics) {
    normalized = normalize_text(input, opt.normalize, opt.strip_diacritics);
    text = normalized;
  }
  std::vector<std::string> out;
  // malformed bytes arrive as U+FFFD and stay inside words
  auto push = [&](std::string&& t) { out.push_back(std::move(t)); };
  split_at_spaces(
      text, opt.lowercase, [](char32_t) { return false; },
      [&](char32_t c) { return is_cjk_ideograph(c) || (opt.split_punctuation && is_punctuation(c)); }, push, push);
  return out;
}

std::vector<std::string> split_spaces(std::string_view text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n')) ++i;
    size_t j = i;
    while (j < text.size() && !(text[j] == ' ' || text[j] == '\t' || text[j] == '\r' || text[j] == '\n')) ++j;
    if (j > i) out.emplace_back(text.substr(i, j - i));
    i = j;
  }
  return out;
}

std::string join_tokens(const std::vector<std::string>& tokens) {
  std::string s;
  for (size_t i = 0; i < tokens.size(); ++i) s += (i ? " " : "") + tokens[i];
  return s;
}

// ---- vocabulary ------------------------------------------------------------------------------

static const std::vector<std::string> kSpecialTokens = {"<pad>", "<unk>", "<bos>", "<eos>"};

Vocabulary::Vocabulary() : Vocabulary(kSpecialTokens) {}

Vocabulary::Vocabulary(std::vector<std::string> tokens) : tokens_(std::move(tokens)) {
  for (int i = 0; i < size(); ++i) index_.emplace(tokens_[i], i);
}

Vocabulary Vocabulary::build(const std::vector<std::vector<std::string>>& sentences, const VocabOptions& opt) {
  std::unordered_map<std::string, long> count;
  for (const auto& s : sentences)
    for (const auto& t : s) ++count[t];
  std::vector<std::pair<std::string, long>> kept;
  for (auto& [t, n] : count)
    if (n >= std::max(1, opt.min_count) &&
        std::find(kSpecialTokens.begin(), kSpecialTokens.end(), t) == kSpecialTokens.end())
      kept.emplace_back(t, n);
  std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  std::vector<std::string> tokens = kSpecialTokens;
  for (auto& [t, n] : kept) {
    if (opt.max_size > 0 && static_cast<int>(tokens.size()) >= opt.max_size) break;
    tokens.push_back(t);
  }
  return Vocabulary(std::move(tokens));
}

int Vocabulary::id(const std::string& token) const {
  auto it = index_.find(token);
  return it == index_.end() ? kUnk : it->second;
}

const std::string& Vocabulary::token(int id) const {
  return (id >= 0 && id < size()) ? tokens_[id] : tokens_[kUnk];
}

std::vector<int> Vocabulary::encode(const std::vector<std::string>& tokens, bool bos, bool eos) const {
  std::vector<int> ids;
  ids.reserve(tokens.size() + 2);
  if (bos) ids.push_back(kBos);
  for (const auto& t : tokens) ids.push_back(id(t));
  if (eos) ids.push_back(kEos);
  return ids;
}

std::vector<std::string> Vocabulary::decode(const std::vector<int>& ids) const {
  std::vector<std::string> out;
  for (int i : ids) {
    if (i == kEos) break;
    if (i == kPad || i == kBos) continue;
    out.push_back(token(i));
  }
  return out;
}

std::string Vocabulary::to_json() const { return nlohmann::json(tokens_).dump(); }

Vocabulary Vocabulary::from_json(const std::string& json, const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json);
  } catch (const std::exception&) {
    throw InputError(path, "vocabulary metadata is not valid JSON");
  }
  if (!j.is_array()) throw InputError(path, "vocabulary metadata: expected a JSON array of tokens");
  std::vector<std::string> tokens;
  for (const auto& t : j) {
    if (!t.is_string()) throw InputError(path, "vocabulary metadata: expected strings, found " + std::string(t.type_name()));
    tokens.push_back(t.get<std::string>());
  }
  if (tokens.size() < kSpecialTokens.size() || !std::equal(kSpecialTokens.begin(), kSpecialTokens.end(), tokens.begin()))
    throw InputError(path, "vocabulary metadata: must start with <pad> <unk> <bos> <eos>");
  Vocabulary v(std::move(tokens));
  if (static_cast<int>(v.index_.size()) != v.size()) throw InputError(path, "vocabulary metadata: repeated token");
  return v;
}

}  // namespace attnviz
