// .npy parsing: the header's Python dict literal, float16/32/64 of either byte order, C and Fortran
// order, unicode (<U) arrays; every size is checked against the bytes present before allocating.
#include <attnviz/error.hpp>
#include <attnviz/io/limits.hpp>
#include <attnviz/io/npy.hpp>
#include <attnviz/io/safetensors.hpp>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <variant>

namespace attnviz {

namespace {

// Dimensions above this are refused outright (no attention axis is this long); it also keeps every
// product of a few dimensions far from overflowing before the exact checked multiply.
constexpr std::int64_t kMaxDim = std::int64_t{1} << 40;
constexpr int kMaxRank = 32;  // numpy's own limit (NPY_MAXDIMS)

// The values numpy writes into the header dict: 'string', True/False, (ints,), int.
using PyValue = std::variant<std::string, bool, std::vector<std::int64_t>, std::int64_t>;

// A recursive-descent reader for exactly the literal numpy writes:
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// Nested dicts/lists (structured dtypes) are refused with a clear message.
class DictParser {
 public:
  DictParser(const std::string& text, const std::string& path, std::uint64_t base)
      : s_(text), path_(path), base_(base) {}

  std::map<std::string, PyValue> parse() {
    std::map<std::string, PyValue> out;
    skip();
    expect('{');
    skip();
    while (peek() != '}') {
      std::string key = string_lit();
      skip();
      expect(':');
      skip();
      PyValue v = value();
      if (!out.emplace(key, std::move(v)).second) fail("header key '" + key + "' repeats");
      after_item('}', "header dict");
    }
    ++i_;
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw InputError(path_, "npy header at byte " + std::to_string(base_ + i_) + ": " + why);
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  // After an item of the dict or tuple that `close` ends: takes a ',' (a trailing one, as numpy
  // writes, included) or checks that `close` comes next.
  void after_item(char close, const char* what) {
    skip();
    if (peek() == ',') {
      ++i_;
      skip();
    } else if (peek() != close) {
      fail(std::string("expected ',' or '") + close + "' in the " + what);
    }
  }
  std::string string_lit() {
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted key or string");
    ++i_;
    std::string out;
    while (i_ < s_.size() && s_[i_] != q) {
      if (s_[i_] == '\\') fail("escapes are not supported in npy header strings");
      out.push_back(s_[i_++]);
      if (out.size() > 256) fail("string longer than 256 characters");
    }
    expect(q);
    return out;
  }
  std::int64_t integer() {
    std::int64_t v = 0;
    bool neg = false;
    if (peek() == '-') {
      neg = true;
      ++i_;
    }
    if (!(peek() >= '0' && peek() <= '9')) fail("expected an integer");
    while (peek() >= '0' && peek() <= '9') {
      if (v > (std::numeric_limits<std::int64_t>::max() - 9) / 10) fail("integer too large");
      v = v * 10 + (s_[i_++] - '0');
    }
    if (peek() == 'L') ++i_;  // Python 2 long literal, as old numpy wrote
    return neg ? -v : v;
  }
  PyValue value() {
    const char c = peek();
    if (c == '\'' || c == '"') return string_lit();
    if (s_.compare(i_, 4, "True") == 0) {
      i_ += 4;
      return true;
    }
    if (s_.compare(i_, 5, "False") == 0) {
      i_ += 5;
      return false;
    }
    if (c == '(') {
      ++i_;
      std::vector<std::int64_t> dims;
      skip();
      while (peek() != ')') {
        dims.push_back(integer());
        if (dims.size() > static_cast<size_t>(kMaxRank)) fail("more than 32 dimensions");
        after_item(')', "shape tuple");
      }
      ++i_;
      return dims;
    }
    if (c == '-' || (c >= '0' && c <= '9')) return integer();
    if (c == '[' || c == '{') fail("structured dtypes are not supported (need a plain float or unicode array)");
    fail("unexpected character in the header dict");
  }

  const std::string& s_;
  const std::string& path_;
  std::uint64_t base_;
  size_t i_ = 0;
};

struct Dtype {
  char kind = 0;        // 'f' float, 'U' unicode
  bool big = false;     // big-endian data
  std::uint64_t item = 0;  // bytes per element
};

// What to do about a dtype attnviz does not read, by numpy's kind letter.
std::string dtype_advice(const std::string& d) {
  const char kind = d.size() >= 2 ? d[1] : '?';
  switch (kind) {
    case 'O':
      return "pickled object array: attnviz never unpickles; save a float array "
             "(np.save(f, np.asarray(x, dtype=np.float32)))";
    case 'i': case 'u':
      return "integer array: attention weights are floats; save x.astype(np.float32)";
    case 'b':
      return "boolean array (a mask?): save the attention weights as float32";
    case 'c':
      return "complex array: save np.abs(x) or x.real as float32";
    case 'S': case 'a':
      return "byte-string array: save tokens as unicode (np.array(tokens, dtype=str))";
    case 'M': case 'm':
      return "datetime array: not attention weights";
    case 'V':
      return "structured or void array: save each field as its own float32 array (np.savez)";
    default:
      return "save the weights as float32 (x.astype(np.float32))";
  }
}

Dtype parse_descr(const std::string& d, const std::string& path) {
  auto bad = [&] {
    return InputError(path, "unsupported npy dtype '" + d + "': " + dtype_advice(d) +
                                " (attnviz reads float16/32/64/128 in either byte order and unicode <U..)");
  };
  if (d.size() < 3) throw bad();
  Dtype t;
  const char order = d[0];
  if (order != '<' && order != '>' && order != '=' && order != '|') throw bad();
  t.big = order == '>';
  t.kind = d[1];
  std::uint64_t n = 0;
  for (size_t i = 2; i < d.size(); ++i) {
    if (d[i] < '0' || d[i] > '9' || n > 1'000'000'000) throw bad();
    n = n * 10 + (d[i] - '0');
  }
  if (t.kind == 'f') {
    // f16 is numpy's longdouble on x86-64 (np.float128): the x87 80-bit format padded to 16 bytes.
    if (n != 2 && n != 4 && n != 8 && n != 16) throw bad();
    t.item = n;
  } else if (t.kind == 'U') {
    // UTF-32 code units; <U0 would let a tiny file claim billions of empty strings.
    if (n == 0 || n > (1u << 20)) throw InputError(path, "unicode dtype '" + d + "' has an unsupported width");
    t.item = 4 * n;
  } else {
    throw bad();
  }
  return t;
}

std::uint32_t load_u32(const unsigned char* p, bool big) {
  return big ? (std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3])
             : (std::uint32_t{p[3]} << 24 | std::uint32_t{p[2]} << 16 | std::uint32_t{p[1]} << 8 | p[0]);
}

// x87 extended precision (little-endian: 64-bit significand with explicit integer bit, then sign
// and 15-bit exponent, bias 16383), as numpy's longdouble stores it on x86-64.
float load_x87(const unsigned char* p16, bool big) {
  unsigned char q[16];
  for (int i = 0; i < 16; ++i) q[i] = big ? p16[15 - i] : p16[i];
  std::uint64_t mant = 0;
  for (int i = 7; i >= 0; --i) mant = mant << 8 | q[i];
  const unsigned se = unsigned{q[9]} << 8 | q[8];
  const bool neg = se & 0x8000;
  const int exp = static_cast<int>(se & 0x7FFF);
  double v;
  if (exp == 0x7FFF) {
    v = (mant << 1) == 0 ? INFINITY : NAN;  // integer bit aside, zero fraction = infinity
  } else {
    // value = significand * 2^(exp - 16383 - 63); exponent 0 means denormal (as if exp were 1)
    v = std::ldexp(static_cast<double>(mant), (exp == 0 ? 1 : exp) - 16383 - 63);
  }
  return static_cast<float>(neg ? -v : v);
}

float load_float(const unsigned char* p, const Dtype& t) {
  if (t.item == 16) return load_x87(p, t.big);
  if (t.item == 2) {
    const std::uint16_t h = t.big ? static_cast<std::uint16_t>(p[0] << 8 | p[1])
                                  : static_cast<std::uint16_t>(p[1] << 8 | p[0]);
    return half_to_float(h);
  }
  if (t.item == 4) return std::bit_cast<float>(load_u32(p, t.big));
  const std::uint64_t hi = load_u32(t.big ? p : p + 4, t.big), lo = load_u32(t.big ? p + 4 : p, t.big);
  return static_cast<float>(std::bit_cast<double>(hi << 32 | lo));
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string shape_str(const std::vector<std::int64_t>& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + ")";
}

}  // namespace

bool npy_dtype_supported(const std::string& descr) {
  try {
    parse_descr(descr, "");
    return true;
  } catch (const InputError&) {
    return false;
  }
}

std::string npy_dtype_advice(const std::string& descr) { return dtype_advice(descr); }

std::int64_t NpyArray::numel() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

bool looks_like_npy(const std::string& head) { return head.size() >= 6 && head.compare(0, 6, "\x93NUMPY") == 0; }

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    std::uint32_t cp;
    if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07;
    else return false;
    if (i + len > n) return false;
    for (int k = 1; k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = cp << 6 | (cc & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

NpyHeader parse_npy_header(const std::string& b, const std::string& path) {
  if (b.size() < 10)
    throw InputError(path, "truncated: " + std::to_string(b.size()) + " bytes, an .npy header needs at least 10");
  if (!looks_like_npy(b)) throw InputError(path, at_offset(0, "npy magic \\x93NUMPY", "other bytes"));
  const unsigned char* u = reinterpret_cast<const unsigned char*>(b.data());
  const int major = u[6], minor = u[7];
  if (major < 1 || major > 3 || minor != 0)
    throw InputError(path, "unsupported npy format version " + std::to_string(major) + "." +
                               std::to_string(minor) + " (supported: 1.0, 2.0, 3.0)");
  std::uint64_t len_bytes = major == 1 ? 2 : 4;
  if (b.size() < 8 + len_bytes) throw InputError(path, "truncated inside the npy header length");
  std::uint64_t hlen = major == 1 ? (std::uint64_t{u[9]} << 8 | u[8]) : load_u32(u + 8, false);
  NpyHeader h;
  h.header_bytes = 8 + len_bytes + hlen;
  if (h.header_bytes > b.size())
    throw InputError(path, at_offset(8, "header length <= " + std::to_string(b.size() - 8 - len_bytes) +
                                            " (bytes present)", std::to_string(hlen)));
  const std::string text = b.substr(8 + len_bytes, hlen);
  if (major < 3) {
    for (unsigned char c : text)
      if (c >= 0x80) throw InputError(path, "npy header of version " + std::to_string(major) + ".0 is not ASCII");
  } else if (!valid_utf8(text)) {
    throw InputError(path, "npy 3.0 header is not valid UTF-8");
  }
  auto dict = DictParser(text, path, 8 + len_bytes).parse();
  auto get = [&](const char* key) -> const PyValue& {
    auto it = dict.find(key);
    if (it == dict.end()) throw InputError(path, std::string("npy header has no '") + key + "' key");
    return it->second;
  };
  const auto* descr = std::get_if<std::string>(&get("descr"));
  const auto* fortran = std::get_if<bool>(&get("fortran_order"));
  const auto* shape = std::get_if<std::vector<std::int64_t>>(&get("shape"));
  if (!descr) throw InputError(path, "npy header 'descr' is not a string (structured dtypes are not supported)");
  if (!fortran) throw InputError(path, "npy header 'fortran_order' is not True/False");
  if (!shape) throw InputError(path, "npy header 'shape' is not a tuple");
  h.descr = *descr;
  h.fortran_order = *fortran;
  h.shape = *shape;
  for (auto d : h.shape) {
    if (d < 0) throw InputError(path, "npy shape " + shape_str(h.shape) + " has a negative dimension");
    if (d > kMaxDim) throw InputError(path, "npy shape " + shape_str(h.shape) + " has an absurdly large dimension");
  }
  if (!npy_dtype_supported(h.descr)) {  // the caller decides: parse_npy refuses, parse_npz skips
    h.supported_dtype = false;
    return h;
  }
  const Dtype t = parse_descr(h.descr, path);
  // numel * itemsize with every step checked: a header may claim 2^40 x 2^40 elements.
  std::uint64_t bytes = t.item;
  for (auto d : h.shape) {
    if (d == 0) {
      bytes = 0;
      break;
    }
    if (__builtin_mul_overflow(bytes, static_cast<std::uint64_t>(d), &bytes))
      throw InputError(path, "npy shape " + shape_str(h.shape) + " overflows: its size does not fit in 64 bits");
  }
  h.data_bytes = bytes;
  return h;
}

NpyArray parse_npy(const std::string& b, const std::string& path) {
  const NpyHeader h = parse_npy_header(b, path);
  const Dtype t = parse_descr(h.descr, path);
  const std::uint64_t have = b.size() - h.header_bytes;
  if (h.data_bytes != have)
    throw InputError(path, "npy shape " + shape_str(h.shape) + " of " + h.descr + " needs " +
                               std::to_string(h.data_bytes) + " data bytes, the file has " + std::to_string(have) +
                               (h.data_bytes > have ? " (truncated?)" : " (trailing bytes)"));
  // From here on numel * itemsize == bytes present: allocations are bounded by the file size
  // (float32 values take at most 2x the bytes of float16 data; strings at most the UTF-32 size).
  check_array_bytes(t.kind == 'f' ? h.data_bytes / t.item * 4 : h.data_bytes, path,
                    "npy array of shape " + shape_str(h.shape));
  NpyArray a;
  a.shape = h.shape;
  a.descr = h.descr;
  a.is_string = t.kind == 'U';
  const std::uint64_t n = t.item ? h.data_bytes / t.item : 0;
  const int rank = static_cast<int>(h.shape.size());
  // Destination (C-order) index of the i-th stored element: identity for C order; for Fortran
  // order the stored sequence runs with the first index fastest.
  std::vector<std::uint64_t> cstride(rank, 1);
  for (int d = rank - 2; d >= 0; --d) cstride[d] = cstride[d + 1] * static_cast<std::uint64_t>(h.shape[d + 1]);
  std::vector<std::int64_t> idx(rank, 0);
  auto next_dest = [&](std::uint64_t i) -> std::uint64_t {
    if (!h.fortran_order || rank < 2) return i;
    std::uint64_t off = 0;
    for (int d = 0; d < rank; ++d) off += static_cast<std::uint64_t>(idx[d]) * cstride[d];
    for (int d = 0; d < rank; ++d) {  // advance the Fortran-order counter
      if (++idx[d] < h.shape[d]) break;
      idx[d] = 0;
    }
    return off;
  };
  const unsigned char* data = reinterpret_cast<const unsigned char*>(b.data()) + h.header_bytes;
  if (a.is_string) {
    a.strings.resize(n);
    const std::uint64_t width = t.item / 4;
    for (std::uint64_t i = 0; i < n; ++i) {
      std::string s;
      std::uint64_t len = width;
      const unsigned char* p = data + i * t.item;
      while (len > 0 && load_u32(p + 4 * (len - 1), t.big) == 0) --len;  // numpy pads with NULs
      for (std::uint64_t c = 0; c < len; ++c) {
        const std::uint32_t cp = load_u32(p + 4 * c, t.big);
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0)
          throw InputError(path, "unicode array element " + std::to_string(i) + " holds an invalid code point " +
                                     std::to_string(cp));
        append_utf8(s, cp);
      }
      a.strings[next_dest(i)] = std::move(s);
    }
  } else {
    a.values.resize(n);
    for (std::uint64_t i = 0; i < n; ++i) a.values[next_dest(i)] = load_float(data + i * t.item, t);
  }
  return a;
}

}  // namespace attnviz
