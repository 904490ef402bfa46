// printable_for_terminal: escapes controls, C1, bidi overrides and invalid UTF-8 in file-derived text.
#include <attnviz/io/printable.hpp>

#include <cstdint>
#include <cstdio>

namespace attnviz {

namespace {

bool is_bidi_control(std::uint32_t cp) {
  return cp == 0x061C || cp == 0x200E || cp == 0x200F || (cp >= 0x202A && cp <= 0x202E) ||
         (cp >= 0x2066 && cp <= 0x2069);
}

// Length of the valid UTF-8 sequence at s[i] and its code point, or 0 if it is not valid.
int decode(std::string_view s, size_t i, std::uint32_t& cp) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  int len;
  if (c < 0x80) return cp = c, 1;
  if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F;
  else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F;
  else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07;
  else return 0;
  if (i + len > s.size()) return 0;
  for (int k = 1; k < len; ++k) {
    const unsigned char cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (cc & 0x3F);
  }
  if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return 0;
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

template <class Sink>
void scan(std::string_view s, Sink&& sink) {
  char buf[16];
  for (size_t i = 0; i < s.size();) {
    std::uint32_t cp = 0;
    const int len = decode(s, i, cp);
    if (len == 0) {
      std::snprintf(buf, sizeof buf, "\\x%02X", static_cast<unsigned char>(s[i]));
      sink(std::string_view(buf), true);
      ++i;
      continue;
    }
    if (cp < 0x20 || cp == 0x7F) {
      const char* named = cp == '\n' ? "\\n" : cp == '\r' ? "\\r" : cp == '\t' ? "\\t" : cp == 0x1B ? "\\e" : nullptr;
      if (!named) std::snprintf(buf, sizeof buf, "\\x%02X", cp);
      sink(std::string_view(named ? named : buf), true);
    } else if ((cp >= 0x80 && cp <= 0x9F) || is_bidi_control(cp)) {
      std::snprintf(buf, sizeof buf, "\\u{%X}", cp);
      sink(std::string_view(buf), true);
    } else {
      sink(s.substr(i, len), false);
    }
    i += len;
  }
}

}  // namespace

std::string printable_for_terminal(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  scan(text, [&](std::string_view piece, bool) { out.append(piece); });
  return out;
}

bool has_unprintable(std::string_view text) {
  bool any = false;
  scan(text, [&](std::string_view, bool escaped) { any = any || escaped; });
  return any;
}

}  // namespace attnviz
