// SentencePiece-style BPE with byte fallback (llama) and GPT-2 byte-level BPE, from GGUF vocabularies.
#include <attnviz/error.hpp>
#include <attnviz/text/lm_tokenizer.hpp>
#include <attnviz/text/tokenizer.hpp>  // utf8_next, utf8_append

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <fmt/core.h>

#include <cstring>
#include <limits>
#include <memory>
#include <queue>

namespace attnviz {

namespace {

constexpr const char* kSpm = "\xE2\x96\x81";  // U+2581 '▁', SentencePiece's space
constexpr const char* kDot = "\xC2\xB7";      // U+00B7 '·', the visible space mark of display()

enum TokenType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// "<0x41>" -> 0x41, else -1.
int parse_byte_token(const std::string& s) {
  if (s.size() != 6 || s.compare(0, 3, "<0x") != 0 || s[5] != '>') return -1;
  int v = 0;
  for (int i = 3; i < 5; ++i) {
    const char c = s[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else return -1;
  }
  return v;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
  return s;
}

// Bytes as readable text: valid UTF-8 characters kept, a space shown as '·', control characters and
// bytes that are not part of a whole UTF-8 character escaped as \xNN.
std::string readable(const std::string& bytes) {
  std::string out;
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    const std::size_t start = pos;
    char32_t cp;
    if (!utf8_next(bytes, pos, cp)) {
      out += fmt::format("\\x{:02X}", static_cast<unsigned char>(bytes[start]));
      continue;
    }
    if (cp == ' ') out += kDot;
    else if (cp < 0x20 || cp == 0x7F) out += fmt::format("\\x{:02X}", static_cast<unsigned>(cp));
    else out.append(bytes, start, pos - start);
  }
  return out;
}

// GPT-2's pre-tokenizer (openai/gpt-2 encoder.py), compiled once; PCRE2 with UCP gives \p{L}, \p{N}
// and Unicode \s the same meaning as the `regex` module GPT-2 used.
const pcre2_code* gpt2_regex() {
  static const std::unique_ptr<pcre2_code, decltype(&pcre2_code_free)> re = [] {
    const char* pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
    int err = 0;
    PCRE2_SIZE off = 0;
    pcre2_code* c = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                                  &err, &off, nullptr);
    if (!c) throw std::logic_error("GPT-2 pre-tokenizer regex does not compile");
    return std::unique_ptr<pcre2_code, decltype(&pcre2_code_free)>(c, &pcre2_code_free);
  }();
  return re.get();
}

}  // namespace

LmTokenizer::LmTokenizer(LmVocab vocab) : v_(std::move(vocab)) {
  const std::size_t n = v_.tokens.size();
  auto bad = [](const std::string& why) { return InputError("", "tokenizer: " + why); };
  if (v_.model != "llama" && v_.model != "gpt2")
    throw bad("model '" + v_.model + "' is not supported (supported: llama = SentencePiece BPE, gpt2 = byte-level BPE)");
  gpt2_ = v_.model == "gpt2";
  if (n == 0) throw bad("the vocabulary is empty");
  if (n > static_cast<std::size_t>(std::numeric_limits<int>::max())) throw bad("the vocabulary is too large");
  if (!v_.types.empty() && v_.types.size() != n)
    throw bad(fmt::format("{} token types for {} tokens", v_.types.size(), n));
  if (!gpt2_ && v_.scores.size() != n) throw bad(fmt::format("{} scores for {} tokens", v_.scores.size(), n));
  if (gpt2_ && !v_.scores.empty() && v_.scores.size() != n)
    throw bad(fmt::format("{} scores for {} tokens", v_.scores.size(), n));
  for (auto [name, id] : {std::pair<const char*, int>{"bos", v_.bos}, {"eos", v_.eos}, {"unk", v_.unk}})
    if (id < -1 || id >= static_cast<int>(n)) throw bad(fmt::format("{} id {} is outside the vocabulary of {}", name, id, n));

  for (int i = 0; i < 256; ++i) byte_ids_[i] = -1;
  byte_of_token_.assign(n, -1);
  for (std::size_t i = 0; i < n; ++i) {
    const int type = v_.types.empty() ? kNormal : v_.types[i];
    const int id = static_cast<int>(i);
    if (!gpt2_) {
      const int b = parse_byte_token(v_.tokens[i]);
      if (b >= 0 && (type == kByte || v_.types.empty())) {
        byte_of_token_[i] = b;
        if (byte_ids_[b] < 0) byte_ids_[b] = id;
        continue;
      }
    }
    // Tokens that text can turn into: not control, unknown, unused or byte tokens.
    if (type == kControl || type == kUnknown || type == kUnused || type == kByte) continue;
    if (id == v_.bos || id == v_.eos || id == v_.unk) continue;
    ids_.emplace(v_.tokens[i], id);  // the first of duplicate strings wins
  }

  if (gpt2_) {
    // GPT-2's bytes_to_unicode: printable bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves,
    // the other 68 bytes take the code points 256, 257, ... in byte order.
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(next++);
      utf8_append(byte_to_unicode_[b], cp);
      unicode_to_byte_[cp] = b;
    }
  }
  // Merge ranks: GPT-2 always; llama-style vocabularies from tokenizer.json (HF BPE merges listed
  // pairs by rank, where SentencePiece merges any pair whose concatenation scores best).
  {
    ranks_.reserve(v_.merges.size());
    for (std::size_t i = 0; i < v_.merges.size(); ++i) {
      const std::string& m = v_.merges[i];
      const std::size_t sp = m.find(' ');
      if (sp == std::string::npos || sp == 0 || sp + 1 == m.size() || m.find(' ', sp + 1) != std::string::npos)
        throw bad(fmt::format("merge #{} \"{}\" is not two tokens separated by one space", i, m));
      ranks_.emplace(m, static_cast<int>(i));
    }
  }
}

const std::string& LmTokenizer::token(int id) const {
  if (id < 0 || id >= size()) throw InputError("", fmt::format("token id {} is outside the vocabulary of {}", id, size()));
  return v_.tokens[id];
}

bool LmTokenizer::is_control(int id) const {
  if (!v_.types.empty()) return v_.types[id] == kControl;
  return id == v_.bos || id == v_.eos;
}

std::vector<int> LmTokenizer::encode(const std::string& text, bool add_bos) const {
  std::vector<int> out;
  if (add_bos && v_.bos >= 0) out.push_back(v_.bos);
  if (text.empty()) return out;
  if (gpt2_) encode_gpt2(text, out);
  else encode_llama(text, out);
  return out;
}

// llama.cpp's SPM tokenizer (llm_tokenizer_spm): symbols start as single UTF-8 characters; a
// priority queue holds adjacent pairs whose concatenation is a token, best score first (the leftmost
// on ties); merged symbols re-queue their new neighbours. What is left and is not a token falls back
// to its bytes.
void LmTokenizer::encode_llama(const std::string& text, std::vector<int>& out) const {
  const std::string s = kSpm + replace_all(text, " ", kSpm);  // [chars]
  struct Sym {
    int prev, next;
    std::size_t start, len;
  };
  std::vector<Sym> sym;
  for (std::size_t pos = 0; pos < s.size();) {
    const std::size_t start = pos;
    char32_t cp;
    utf8_next(s, pos, cp);  // a malformed byte is a one-byte symbol
    sym.push_back({static_cast<int>(sym.size()) - 1, static_cast<int>(sym.size()) + 1, start, pos - start});
  }
  sym.back().next = -1;

  struct Bigram {
    int left, right;
    float score;
    std::size_t len;
  };
  auto worse = [](const Bigram& a, const Bigram& b) { return a.score < b.score || (a.score == b.score && a.left > b.left); };
  std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> queue(worse);
  auto try_add = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    const std::size_t len = sym[l].len + sym[r].len;
    auto it = ids_.find(s.substr(sym[l].start, len));
    if (it == ids_.end()) return;
    if (!ranks_.empty()) {
      // tokenizer.json BPE: only listed pairs merge, the lowest rank first.
      auto m = ranks_.find(s.substr(sym[l].start, sym[l].len) + " " + s.substr(sym[r].start, sym[r].len));
      if (m == ranks_.end()) return;
      queue.push({l, r, -static_cast<float>(m->second), len});
      return;
    }
    queue.push({l, r, v_.scores[it->second], len});
  };
  for (std::size_t i = 1; i < sym.size(); ++i) try_add(static_cast<int>(i) - 1, static_cast<int>(i));
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Sym& l = sym[b.left];
    Sym& r = sym[b.right];
    if (l.len == 0 || r.len == 0 || l.len + r.len != b.len) continue;  // stale: one side already merged
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  for (int i = 0; i >= 0; i = sym[i].next) {
    const std::string piece = s.substr(sym[i].start, sym[i].len);
    if (auto it = ids_.find(piece); it != ids_.end()) {
      out.push_back(it->second);
      continue;
    }
    for (unsigned char c : piece) {
      if (byte_ids_[c] >= 0) out.push_back(byte_ids_[c]);
      else if (v_.unk >= 0) out.push_back(v_.unk);
      else throw InputError("", fmt::format("tokenizer: byte 0x{:02X} has no token and the vocabulary has no unknown token", c));
    }
  }
}

void LmTokenizer::encode_gpt2(const std::string& text, std::vector<int>& out) const {
  const pcre2_code* re = gpt2_regex();
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(pcre2_match_data_create_from_pattern(re, nullptr),
                                                                          &pcre2_match_data_free);
  // The regex runs on valid UTF-8 only: split the text into valid runs; a malformed byte is a word of its own.
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = pos;
    char32_t cp;
    while (end < text.size()) {
      std::size_t p = end;
      if (!utf8_next(text, p, cp)) break;
      end = p;
    }
    // [pos, end) is valid UTF-8
    std::size_t at = pos;
    while (at < end) {
      const int rc = pcre2_match(re, reinterpret_cast<PCRE2_SPTR>(text.data() + pos), end - pos, at - pos,
                                 PCRE2_NO_UTF_CHECK, md.get(), nullptr);
      std::size_t b, e;
      if (rc < 0) {
        b = at, e = end;  // cannot happen (\s+ and [^\s\p{L}\p{N}]+ cover everything); keep the rest whole
      } else {
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
        b = pos + ov[0], e = pos + ov[1];
        if (e <= at) {  // an empty match: take one character
          std::size_t p = at;
          utf8_next(text, p, cp);
          b = at, e = p;
        }
      }
      if (b > at) bpe_gpt2_word(text.substr(at, b - at), out);  // skipped text (not expected): its own word
      bpe_gpt2_word(text.substr(b, e - b), out);
      at = e;
    }
    pos = end;
    if (pos < text.size()) {  // the malformed byte
      bpe_gpt2_word(text.substr(pos, 1), out);
      ++pos;
    }
  }
}

// Byte-level BPE of one pre-token: map bytes to their code points, then merge the adjacent pair of
// lowest rank (every occurrence, left to right) until no pair has a rank.
void LmTokenizer::bpe_gpt2_word(const std::string& word, std::vector<int>& out) const {
  std::vector<std::string> parts;
  parts.reserve(word.size());
  for (unsigned char c : word) parts.push_back(byte_to_unicode_[c]);
  if (parts.size() > 1) {
    while (true) {
      int best = -1;
      std::size_t best_i = 0;
      for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
        auto it = ranks_.find(parts[i] + " " + parts[i + 1]);
        if (it != ranks_.end() && (best < 0 || it->second < best)) best = it->second, best_i = i;
      }
      if (best < 0) break;
      const std::string a = parts[best_i], b = parts[best_i + 1];
      std::vector<std::string> merged;
      merged.reserve(parts.size());
      for (std::size_t i = 0; i < parts.size(); ++i) {
        if (i + 1 < parts.size() && parts[i] == a && parts[i + 1] == b) {
          merged.push_back(a + b);
          ++i;
        } else {
          merged.push_back(parts[i]);
        }
      }
      parts.swap(merged);
      if (parts.size() == 1) break;
    }
  }
  for (const auto& p : parts) {
    if (auto it = ids_.find(p); it != ids_.end()) {
      out.push_back(it->second);
    } else if (v_.unk >= 0) {
      out.push_back(v_.unk);
    } else {
      throw InputError("", fmt::format("tokenizer: \"{}\" is not in the vocabulary and there is no unknown token", p));
    }
  }
}

std::string LmTokenizer::decode(int prev, int id) const {
  const std::string& t = token(id);
  if (is_control(id)) return "";
  if (gpt2_) {
    std::string out;
    std::size_t pos = 0;
    while (pos < t.size()) {
      const std::size_t start = pos;
      char32_t cp;
      const bool ok = utf8_next(t, pos, cp);
      auto it = ok ? unicode_to_byte_.find(cp) : unicode_to_byte_.end();
      if (it != unicode_to_byte_.end()) out += static_cast<char>(it->second);
      else out.append(t, start, pos - start);  // added tokens hold plain text
    }
    return out;
  }
  if (byte_of_token_[id] >= 0) return std::string(1, static_cast<char>(byte_of_token_[id]));
  std::string piece = replace_all(t, kSpm, " ");
  if (prev >= 0 && prev == v_.bos && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
  return piece;
}

std::string LmTokenizer::decode(const std::vector<int>& ids) const {
  std::string out;
  int prev = -1;
  for (int id : ids) {
    out += decode(prev, id);
    prev = id;
  }
  return out;
}

std::string LmTokenizer::display(int id) const {
  const std::string& t = token(id);
  if (is_control(id) || id == v_.unk || (!v_.types.empty() && v_.types[id] == kUnknown)) return t;
  if (gpt2_) return readable(decode(-1, id));
  if (byte_of_token_[id] >= 0) return readable(std::string(1, static_cast<char>(byte_of_token_[id])));
  return readable(replace_all(t, kSpm, " "));
}

}  // namespace attnviz
