// GGUF v2/v3 reader: every count, length and offset is checked against the file size before it is
// used or anything proportional to it is allocated; tensors are dequantized to float32 on request.
#include <attnviz/error.hpp>
#include <attnviz/io/gguf.hpp>
#include <attnviz/io/limits.hpp>
#include <attnviz/io/safetensors.hpp>  // half_to_float, bfloat16_to_float

#include <fmt/core.h>
#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <stdexcept>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace attnviz {

static_assert(std::endian::native == std::endian::little, "attnviz assumes a little-endian host");

// The bytes of the file: an mmap of the file, or a buffer the caller handed over.
struct GgufFile::Storage {
  std::string owned;
  void* map = nullptr;
  std::size_t map_len = 0;
  Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() {
    if (map) ::munmap(map, map_len);
  }
};

namespace {

constexpr std::uint32_t kDefaultAlignment = 32;
constexpr int kMaxDims = 4;           // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;     // arrays of arrays of ...: deeper nesting is refused (stack depth)
constexpr std::uint64_t kMinKvBytes = 8 + 4 + 1;           // empty key, type, 1-byte value
constexpr std::uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;  // empty name, n_dims 0, type, offset

std::uint64_t scalar_size(std::uint32_t t) {
  switch (static_cast<GgufValueType>(t)) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::BOOL: return 1;
    case GgufValueType::UINT16: case GgufValueType::INT16: return 2;
    case GgufValueType::UINT32: case GgufValueType::INT32: case GgufValueType::FLOAT32: return 4;
    case GgufValueType::UINT64: case GgufValueType::INT64: case GgufValueType::FLOAT64: return 8;
    default: return 0;  // string, array, unknown
  }
}

bool is_integer(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::UINT16: case GgufValueType::INT16:
    case GgufValueType::UINT32: case GgufValueType::INT32: case GgufValueType::UINT64: case GgufValueType::INT64:
    case GgufValueType::BOOL:
      return true;
    default:
      return false;
  }
}

template <class T>
T load(const std::uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// A bounds-checked little-endian reader over the file image; every failure names the offset.
class Reader {
 public:
  Reader(const std::uint8_t* data, std::uint64_t size, const std::string& path)
      : data_(data), size_(size), path_(path) {}

  std::uint64_t pos() const { return pos_; }
  std::uint64_t left() const { return size_ - pos_; }
  void seek(std::uint64_t p) { pos_ = p; }

  [[noreturn]] void fail(const std::string& what, std::uint64_t at) const {
    throw InputError(path_, fmt::format("{}, at offset {}", what, at));
  }
  void need(std::uint64_t n, const std::string& what) const {
    if (n > left())
      fail(fmt::format("file ends inside {} (needs {} bytes, {} left)", what, n, left()), pos_);
  }
  template <class T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v = load<T>(data_ + pos_);
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const std::string& what) {
    const std::uint64_t at = pos_;
    const auto n = read<std::uint64_t>(what + " length");
    if (n > left())
      fail(fmt::format("{} claims {} bytes but only {} are left in the file", what, n, left()), at);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }
  void skip_string(const std::string& what) {
    const std::uint64_t at = pos_;
    const auto n = read<std::uint64_t>(what + " length");
    if (n > left())
      fail(fmt::format("{} claims {} bytes but only {} are left in the file", what, n, left()), at);
    pos_ += n;
  }

  // Walks over one value of type t, checking every length; `what` names it in messages.
  void skip_value(std::uint32_t t, const std::string& what, int depth) {
    const std::uint64_t at = pos_;
    if (const std::uint64_t s = scalar_size(t)) {
      need(s, what);
      if (static_cast<GgufValueType>(t) == GgufValueType::BOOL && data_[pos_] > 1)
        fail(fmt::format("{} is a bool with byte value {} (expected 0 or 1)", what, data_[pos_]), at);
      pos_ += s;
      return;
    }
    if (static_cast<GgufValueType>(t) == GgufValueType::STRING) {
      skip_string(what);
      return;
    }
    if (static_cast<GgufValueType>(t) != GgufValueType::ARRAY)
      fail(fmt::format("{} has unknown value type {}", what, t), at - 4);
    if (depth >= kMaxArrayDepth) fail(fmt::format("{}: arrays nested deeper than {}", what, kMaxArrayDepth), at);
    const auto et = read<std::uint32_t>(what + " element type");
    const auto n = read<std::uint64_t>(what + " element count");
    if (const std::uint64_t s = scalar_size(et)) {
      if (n > left() / s)
        fail(fmt::format("{} claims {} {} elements ({} bytes each) but only {} bytes are left", what, n,
                         gguf_value_type_name(et), s, left()), at);
      if (static_cast<GgufValueType>(et) == GgufValueType::BOOL) {
        for (std::uint64_t i = 0; i < n; ++i)
          if (data_[pos_ + i] > 1)
            fail(fmt::format("{}[{}] is a bool with byte value {} (expected 0 or 1)", what, i, data_[pos_ + i]),
                 pos_ + i);
      }
      pos_ += n * s;
      return;
    }
    if (static_cast<GgufValueType>(et) == GgufValueType::STRING) {
      if (n > left() / 8)
        fail(fmt::format("{} claims {} strings but only {} bytes are left (each needs at least 8)", what, n, left()),
             at);
      for (std::uint64_t i = 0; i < n; ++i) skip_string(fmt::format("{}[{}]", what, i));
      return;
    }
    if (static_cast<GgufValueType>(et) == GgufValueType::ARRAY) {
      if (n > left() / 12)
        fail(fmt::format("{} claims {} arrays but only {} bytes are left (each needs at least 12)", what, n, left()),
             at);
      for (std::uint64_t i = 0; i < n; ++i) {
        // Each element is itself "u32 type, u64 count, data" without a leading value-type word.
        skip_array_body(fmt::format("{}[{}]", what, i), depth + 1);
      }
      return;
    }
    fail(fmt::format("{} has unknown array element type {}", what, et), at);
  }

  // The element of an array of arrays: element type, count, data (the outer array gave the ARRAY type).
  void skip_array_body(const std::string& what, int depth) {
    // Re-use skip_value's array branch: it starts by reading the element type.
    skip_value(static_cast<std::uint32_t>(GgufValueType::ARRAY), what, depth);
  }

 private:
  const std::uint8_t* data_;
  std::uint64_t size_;
  std::uint64_t pos_ = 0;
  const std::string& path_;
};

std::string quote(const std::string& s, std::size_t max_chars) {
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (out.size() >= max_chars) {
      out += "…";
      break;
    }
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') out += '\\', out += static_cast<char>(c);
    else if (c < 0x20 || c == 0x7F) out += fmt::format("\\x{:02X}", c);
    else out += static_cast<char>(c);
  }
  return out + "\"";
}

std::string grouped(std::uint64_t v) {  // 1234567 -> "1,234,567"
  std::string d = std::to_string(v), out;
  for (std::size_t i = 0; i < d.size(); ++i) {
    if (i && (d.size() - i) % 3 == 0) out += ',';
    out += d[i];
  }
  return out;
}

std::string shape_string(const std::vector<std::uint64_t>& ne) {
  return fmt::format("[{}]", fmt::join(ne, ", "));
}

}  // namespace

const char* ggml_type_name(std::uint32_t type) {
  // ggml's type table (ggml.h enum ggml_type); the numbers are part of the file format.
  static const char* names[] = {"F32",  "F16",  "Q4_0", "Q4_1", "Q4_2 (removed)", "Q4_3 (removed)", "Q5_0",
                                "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K",
                                "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS",
                                "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16", "Q4_0_4_4", "Q4_0_4_8",
                                "Q4_0_8_8", "TQ1_0", "TQ2_0", "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4"};
  if (type < sizeof(names) / sizeof(names[0])) return names[type];
  return "unknown";
}

const char* gguf_value_type_name(std::uint32_t type) {
  static const char* names[] = {"uint8", "int8",  "uint16", "int16", "uint32", "int32", "float32",
                                "bool",  "string", "array", "uint64", "int64", "float64"};
  if (type < sizeof(names) / sizeof(names[0])) return names[type];
  return "unknown";
}

std::uint64_t GgufTensorInfo::numel() const {
  std::uint64_t n = 1;
  for (auto d : ne) n *= d;  // checked against overflow when the file was parsed
  return n;
}

bool looks_like_gguf(const std::string& head) { return head.size() >= 4 && head.compare(0, 4, "GGUF") == 0; }

std::uint64_t ggml_block_elems(GgmlType t) {
  switch (t) {
    case GgmlType::Q8_0: case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1:
      return 32;
    case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
      return 256;  // QK_K: one super-block
    default: return 1;
  }
}

std::uint64_t ggml_block_bytes(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return 4;
    case GgmlType::F16: case GgmlType::BF16: return 2;
    case GgmlType::Q8_0: return 2 + 32;  // f16 scale d, 32 x int8
    case GgmlType::Q4_0: return 2 + 16;  // f16 scale d, 32 x 4-bit in 16 bytes
    case GgmlType::Q4_1: return 2 + 2 + 16;      // d, min m, 32 x 4-bit
    case GgmlType::Q5_0: return 2 + 4 + 16;      // d, 32 fifth bits, 32 x low 4 bits
    case GgmlType::Q5_1: return 2 + 2 + 4 + 16;  // d, min m, 32 fifth bits, 32 x low 4 bits
    case GgmlType::Q2_K: return 16 + 64 + 2 + 2;        // scales/mins, 2-bit quants, d, dmin
    case GgmlType::Q3_K: return 32 + 64 + 12 + 2;       // high bits, low 2 bits, 6-bit scales, d
    case GgmlType::Q4_K: return 2 + 2 + 12 + 128;       // d, dmin, 6-bit scales/mins, 4-bit quants
    case GgmlType::Q5_K: return 2 + 2 + 12 + 32 + 128;  // as Q4_K plus 32 bytes of fifth bits
    case GgmlType::Q6_K: return 128 + 64 + 16 + 2;      // low 4 bits, high 2 bits, int8 scales, d
  }
  return 0;
}

std::vector<std::uint8_t> ggml_quantize_q8_0(const float* src, std::uint64_t n) {
  if (n % 32 != 0) throw std::invalid_argument("ggml_quantize_q8_0: n is not a multiple of 32");
  std::vector<std::uint8_t> out(n / 32 * 34);
  std::uint8_t* o = out.data();
  for (std::uint64_t b = 0; b < n / 32; ++b, src += 32, o += 34) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(src[i]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    const std::uint16_t dh = float_to_half(d);
    std::memcpy(o, &dh, 2);
    for (int i = 0; i < 32; ++i) o[2 + i] = static_cast<std::uint8_t>(static_cast<std::int8_t>(std::lround(src[i] * id)));
  }
  return out;
}

namespace {

// ---- K-quants: super-blocks of 256 elements (ggml-common.h, block_q2_K .. block_q6_K) ----------------
// Every product below (an f16 scale times a 4..8-bit integer times a small quant) is exact in float32,
// so the one rounding is the last subtraction (Q2_K, Q4_K, Q5_K) or multiplication (Q3_K, Q6_K): a
// float64 computation cast to float32 gives the same bits (tests/data/gguf/kquant_blocks.*).

float f16_at(const std::uint8_t* p) { return half_to_float(load<std::uint16_t>(p)); }

// Q4_K/Q5_K: 8 sub-blocks of 32, each with a 6-bit scale and a 6-bit min packed into 12 bytes.
// Sub-blocks 0-3: scale = low 6 bits of s[j], min = low 6 bits of s[j+4]. Sub-blocks 4-7: the low 4
// bits come from the nibbles of s[j+4] (scale low, min high), the top 2 bits from the top 2 bits of
// s[j-4] (scale) and s[j] (min).
void scale_min_k4(const std::uint8_t* s, int j, int& sc, int& m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
    m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Q4_K (144 bytes): d, dmin (f16), 12 scale bytes, 128 quant bytes. Elements 64c .. 64c+31 are the low
// nibbles of qs[32c .. 32c+31] (sub-block 2c), elements 64c+32 .. 64c+63 their high nibbles
// (sub-block 2c+1); x = d*scale*q - dmin*min.
// Q5_K (176 bytes): the same with 32 bytes qh between the scales and the nibbles: bit j of qh[l] is
// the fifth bit (value 16) of element l of sub-block j.
void dequant_q45_k(const std::uint8_t* b, float* y, bool five) {
  const float d = f16_at(b), dmin = f16_at(b + 2);
  const std::uint8_t* s = b + 4;
  const std::uint8_t* qh = b + 16;
  const std::uint8_t* qs = b + (five ? 48 : 16);
  for (int j = 0; j < 8; ++j) {
    int sc = 0, m = 0;
    scale_min_k4(s, j, sc, m);
    const float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(m);
    const std::uint8_t* q = qs + 32 * (j / 2);
    const int shift = 4 * (j % 2);
    for (int l = 0; l < 32; ++l) {
      int v = (q[l] >> shift) & 0x0F;
      if (five) v |= ((qh[l] >> j) & 1) << 4;
      y[32 * j + l] = dl * static_cast<float>(v) - ml;
    }
  }
}

// Q6_K (210 bytes): ql[128], qh[64], int8 scales[16], d (f16). Element e (0..255) has scale
// scales[e / 16]. In half h (e = 128h + 32k + l, k = 0..3, l = 0..31) its low 4 bits are the low (k = 0, 1)
// or high (k = 2, 3) nibble of ql[64h + l + 32 (k odd)], its high 2 bits are bits 2k, 2k+1 of
// qh[32h + l]; x = d * scale * (q - 32).
void dequant_q6_k(const std::uint8_t* b, float* y) {
  const std::uint8_t* ql = b;
  const std::uint8_t* qh = b + 128;
  const auto* sc = reinterpret_cast<const std::int8_t*>(b + 192);
  const float d = f16_at(b + 208);
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < 4; ++k)
      for (int half = 0; half < 2; ++half) {  // 16 elements share a scale: hoisted (same rounding)
        const int e0 = 128 * h + 32 * k + 16 * half;
        const float ds = d * static_cast<float>(sc[e0 / 16]);
        const std::uint8_t* lq = ql + 64 * h + 32 * (k & 1) + 16 * half;
        const std::uint8_t* hq = qh + 32 * h + 16 * half;
        const int ls = 4 * (k >> 1), hs = 2 * k;
        for (int l = 0; l < 16; ++l) {
          const int q = (((lq[l] >> ls) & 0x0F) | (((hq[l] >> hs) & 3) << 4)) - 32;
          y[e0 + l] = ds * static_cast<float>(q);
        }
      }
}

// Q2_K (84 bytes): scales[16] (low nibble: scale, high nibble: min of sub-block e / 16), qs[64], d, dmin.
// Element e = 128h + 32k + l has the 2 bits at bit 2k of qs[32h + l]; x = d*scale*q - dmin*min.
void dequant_q2_k(const std::uint8_t* b, float* y) {
  const std::uint8_t* sc = b;
  const std::uint8_t* qs = b + 16;
  const float d = f16_at(b + 80), dmin = f16_at(b + 82);
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < 4; ++k)
      for (int half = 0; half < 2; ++half) {
        const int e0 = 128 * h + 32 * k + 16 * half;
        const float dl = d * static_cast<float>(sc[e0 / 16] & 0x0F), ml = dmin * static_cast<float>(sc[e0 / 16] >> 4);
        const std::uint8_t* q = qs + 32 * h + 16 * half;
        for (int l = 0; l < 16; ++l) y[e0 + l] = dl * static_cast<float>((q[l] >> (2 * k)) & 3) - ml;
      }
}

// Q3_K (110 bytes): hmask[32], qs[64], 12 bytes of 16 six-bit scales, d. Element e = 128h + 32k + l has
// its low 2 bits at bit 2k of qs[32h + l] and, when bit 4h+k of hmask[l] is clear, 4 subtracted:
// q in -4..3. Scale j: low 4 bits from the low (j < 8) or high nibble of byte j % 8, top 2 bits at bit
// 2*(j/4) of byte 8 + j % 4; stored with a bias of 32. x = d * (scale - 32) * q.
void dequant_q3_k(const std::uint8_t* b, float* y) {
  const std::uint8_t* hm = b;
  const std::uint8_t* qs = b + 32;
  const std::uint8_t* s = b + 96;
  const float d = f16_at(b + 108);
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < 4; ++k)
      for (int half = 0; half < 2; ++half) {
        const int e0 = 128 * h + 32 * k + 16 * half, j = e0 / 16;
        const int scale = (((s[j % 8] >> (4 * (j / 8))) & 0x0F) | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
        const float dl = d * static_cast<float>(scale);
        const std::uint8_t* q = qs + 32 * h + 16 * half;
        const std::uint8_t* m = hm + 16 * half;
        for (int l = 0; l < 16; ++l) {
          const int v = ((q[l] >> (2 * k)) & 3) - (((m[l] >> (4 * h + k)) & 1) ? 0 : 4);
          y[e0 + l] = dl * static_cast<float>(v);
        }
      }
}

}  // namespace

// Block formats (ggml-common.h): Q8_0 x[i] = d * qs[i]; Q4_0 stores element j in the low nibble of
// qs[j] and element j + 16 in the high nibble, x = d * (nibble - 8).
void ggml_dequantize(GgmlType t, const std::uint8_t* src, float* dst, std::uint64_t n) {
  if (n == 0) return;  // an empty tensor has no bytes: src and dst may be null
  switch (t) {
    case GgmlType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case GgmlType::F16:
      for (std::uint64_t i = 0; i < n; ++i) dst[i] = half_to_float(load<std::uint16_t>(src + 2 * i));
      return;
    case GgmlType::BF16:
      for (std::uint64_t i = 0; i < n; ++i) dst[i] = bfloat16_to_float(load<std::uint16_t>(src + 2 * i));
      return;
    case GgmlType::Q8_0:
      for (std::uint64_t b = 0; b < n / 32; ++b, src += 34, dst += 32) {
        const float d = half_to_float(load<std::uint16_t>(src));
        for (int i = 0; i < 32; ++i) dst[i] = d * static_cast<float>(static_cast<std::int8_t>(src[2 + i]));
      }
      return;
    case GgmlType::Q4_0:
      for (std::uint64_t b = 0; b < n / 32; ++b, src += 18, dst += 32) {
        const float d = half_to_float(load<std::uint16_t>(src));
        for (int j = 0; j < 16; ++j) {
          dst[j] = d * static_cast<float>((src[2 + j] & 0x0F) - 8);
          dst[j + 16] = d * static_cast<float>((src[2 + j] >> 4) - 8);
        }
      }
      return;
    case GgmlType::Q4_1:
      for (std::uint64_t b = 0; b < n / 32; ++b, src += 20, dst += 32) {
        const float d = half_to_float(load<std::uint16_t>(src)), m = half_to_float(load<std::uint16_t>(src + 2));
        for (int j = 0; j < 16; ++j) {
          dst[j] = d * static_cast<float>(src[4 + j] & 0x0F) + m;
          dst[j + 16] = d * static_cast<float>(src[4 + j] >> 4) + m;
        }
      }
      return;
    case GgmlType::Q5_0:
    case GgmlType::Q5_1: {
      // The fifth bit of element j is bit j of the little-endian 32-bit qh (elements j and j + 16
      // share byte j of the low nibbles as in Q4_0); Q5_0 is centred (q - 16), Q5_1 adds its min.
      const bool with_min = t == GgmlType::Q5_1;
      const int qh_at = with_min ? 4 : 2, step = with_min ? 24 : 22;
      for (std::uint64_t b = 0; b < n / 32; ++b, src += step, dst += 32) {
        const float d = half_to_float(load<std::uint16_t>(src));
        const float m = with_min ? half_to_float(load<std::uint16_t>(src + 2)) : 0.f;
        const std::uint32_t qh = load<std::uint32_t>(src + qh_at);
        const std::uint8_t* qs = src + qh_at + 4;
        const int centre = with_min ? 0 : 16;
        for (int j = 0; j < 16; ++j) {
          const int lo = (qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
          const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
          dst[j] = d * static_cast<float>(lo - centre) + m;
          dst[j + 16] = d * static_cast<float>(hi - centre) + m;
        }
      }
      return;
    }
    case GgmlType::Q2_K:
      for (std::uint64_t b = 0; b < n / 256; ++b) dequant_q2_k(src + b * 84, dst + b * 256);
      return;
    case GgmlType::Q3_K:
      for (std::uint64_t b = 0; b < n / 256; ++b) dequant_q3_k(src + b * 110, dst + b * 256);
      return;
    case GgmlType::Q4_K:
      for (std::uint64_t b = 0; b < n / 256; ++b) dequant_q45_k(src + b * 144, dst + b * 256, false);
      return;
    case GgmlType::Q5_K:
      for (std::uint64_t b = 0; b < n / 256; ++b) dequant_q45_k(src + b * 176, dst + b * 256, true);
      return;
    case GgmlType::Q6_K:
      for (std::uint64_t b = 0; b < n / 256; ++b) dequant_q6_k(src + b * 210, dst + b * 256);
      return;
  }
}

GgufFile GgufFile::open(const std::filesystem::path& path) {
  const std::string p = path.string();
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError(p, fmt::format("cannot open: {}", std::strerror(errno)));
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw InputError(p, "not a regular file");
  }
  auto storage = std::make_shared<Storage>();
  if (st.st_size > 0) {
    void* m = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      const int e = errno;
      ::close(fd);
      throw InputError(p, fmt::format("cannot map the file: {}", std::strerror(e)));
    }
    storage->map = m;
    storage->map_len = static_cast<std::size_t>(st.st_size);
  }
  ::close(fd);
  GgufFile f;
  f.path_ = path;
  f.data_ = static_cast<const std::uint8_t*>(storage->map);
  f.size_ = storage->map_len;
  f.storage_ = std::move(storage);
  f.parse_all();
  return f;
}

GgufFile GgufFile::parse(std::string bytes, const std::filesystem::path& path) {
  auto storage = std::make_shared<Storage>();
  storage->owned = std::move(bytes);
  GgufFile f;
  f.path_ = path;
  f.data_ = reinterpret_cast<const std::uint8_t*>(storage->owned.data());
  f.size_ = storage->owned.size();
  f.storage_ = std::move(storage);
  f.parse_all();
  return f;
}

std::uint64_t GgufFile::file_size() const { return size_; }

void GgufFile::fail(const std::string& what, std::uint64_t offset) const {
  throw InputError(path_.string(), fmt::format("{}, at offset {}", what, offset));
}

void GgufFile::parse_all() {
  const std::string path = path_.string();
  Reader r(data_, size_, path);

  // ---- header
  if (size_ == 0) fail("empty file (a GGUF file starts with the magic \"GGUF\")", 0);
  if (size_ < 4 || std::memcmp(data_, "GGUF", 4) != 0) {
    std::string found;
    for (std::uint64_t i = 0; i < std::min<std::uint64_t>(size_, 4); ++i)
      found += fmt::format("{}{:02X}", i ? " " : "", data_[i]);
    fail(fmt::format("not a GGUF file (magic {}, expected 47 47 55 46 \"GGUF\")", found), 0);
  }
  r.seek(4);
  version_ = r.read<std::uint32_t>("the version");
  if (version_ != 2 && version_ != 3) {
    if (version_ != 0 && (version_ & 0xFFFF) == 0)
      fail(fmt::format("version field {:#x} looks byte-swapped: big-endian GGUF files are not supported", version_),
           4);
    if (version_ == 1)
      fail("GGUF version 1 (32-bit counts, 2023 drafts) is not supported; convert it again (versions 2 and 3 are read)",
           4);
    fail(fmt::format("GGUF version {} is not supported (versions 2 and 3 are read)", version_), 4);
  }
  const auto n_tensors = r.read<std::uint64_t>("the tensor count");
  const auto n_kv = r.read<std::uint64_t>("the metadata count");
  if (n_kv > r.left() / kMinKvBytes)
    fail(fmt::format("header claims {} metadata entries but only {} bytes follow (each needs at least {})", n_kv,
                     r.left(), kMinKvBytes),
         16);
  if (n_tensors > r.left() / kMinTensorInfoBytes)
    fail(fmt::format("header claims {} tensors but only {} bytes follow (each needs at least {})", n_tensors,
                     r.left(), kMinTensorInfoBytes),
         8);

  // ---- metadata: validated by walking it; values are decoded later, from the image, when asked for.
  // No reserve() from the claimed counts: the tables grow only with entries actually read from the file.
  for (std::uint64_t i = 0; i < n_kv; ++i) {
    const std::uint64_t at = r.pos();
    GgufKv kv;
    kv.key = r.read_string(fmt::format("metadata key #{}", i));
    const std::string what = fmt::format("metadata '{}'", kv.key);
    if (kv_index_.count(kv.key)) fail(fmt::format("duplicate metadata key '{}'", kv.key), at);
    const std::uint64_t type_at = r.pos();
    const auto t = r.read<std::uint32_t>(what + " value type");
    if (t > static_cast<std::uint32_t>(GgufValueType::FLOAT64))
      fail(fmt::format("{} has unknown value type {}", what, t), type_at);
    kv.type = static_cast<GgufValueType>(t);
    if (kv.type == GgufValueType::ARRAY) {
      const std::uint64_t arr_at = r.pos();
      r.need(12, what + " array header");
      kv.elem_type = static_cast<GgufValueType>(load<std::uint32_t>(data_ + arr_at));
      kv.count = load<std::uint64_t>(data_ + arr_at + 4);
      kv.value_offset = arr_at + 12;
      r.skip_value(t, what, 0);
    } else {
      kv.value_offset = r.pos();
      r.skip_value(t, what, 0);
    }
    kv_index_.emplace(kv.key, kvs_.size());
    kvs_.push_back(std::move(kv));
  }

  alignment_ = kDefaultAlignment;
  if (const GgufKv* a = kv("general.alignment")) {
    if (a->type != GgufValueType::UINT32)
      fail(fmt::format("general.alignment is {}, expected uint32", gguf_value_type_name(static_cast<std::uint32_t>(a->type))),
           a->value_offset);
    const auto v = load<std::uint32_t>(data_ + a->value_offset);
    if (v == 0 || (v & (v - 1)) != 0)
      fail(fmt::format("general.alignment is {}, expected a power of two", v), a->value_offset);
    alignment_ = v;
  }

  // ---- tensor infos
  if (n_tensors > r.left() / kMinTensorInfoBytes)
    fail(fmt::format("header claims {} tensors but only {} bytes follow the metadata (each needs at least {})",
                     n_tensors, r.left(), kMinTensorInfoBytes),
         r.pos());
  std::vector<std::uint64_t> offset_field;  // where each tensor's offset is written, for messages
  for (std::uint64_t i = 0; i < n_tensors; ++i) {
    const std::uint64_t at = r.pos();
    GgufTensorInfo t;
    t.name = r.read_string(fmt::format("tensor name #{}", i));
    const std::string what = fmt::format("tensor '{}'", t.name);
    if (tensor_index_.count(t.name)) fail(fmt::format("duplicate tensor name '{}'", t.name), at);
    const std::uint64_t dims_at = r.pos();
    const auto n_dims = r.read<std::uint32_t>(what + " n_dims");
    if (n_dims > kMaxDims) fail(fmt::format("{} has n_dims {} (at most {})", what, n_dims, kMaxDims), dims_at);
    std::uint64_t numel = 1;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      const std::uint64_t ne_at = r.pos();
      const auto ne = r.read<std::uint64_t>(fmt::format("{} ne[{}]", what, d));
      if (ne > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        fail(fmt::format("{} has a negative dimension ne[{}] = {}", what, d, static_cast<std::int64_t>(ne)), ne_at);
      if (ne != 0 && numel > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / ne)
        fail(fmt::format("{}: the product of its dimensions overflows 63 bits", what), ne_at);
      numel *= ne;
      t.ne.push_back(ne);
    }
    const std::uint64_t type_at = r.pos();
    const auto type = r.read<std::uint32_t>(what + " type");
    switch (static_cast<GgmlType>(type)) {
      case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16: case GgmlType::Q8_0: case GgmlType::Q4_0:
      case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1:
      case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
        break;
      default:
        fail(fmt::format("{} has tensor type {} ({}), which attnviz does not read (supported: F32, F16, BF16, "
                         "Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K; requantize the model with llama-quantize to "
                         "one of them, e.g. Q4_K_M or Q8_0)",
                         what, ggml_type_name(type), type),
             type_at);
    }
    t.type = static_cast<GgmlType>(type);
    const std::uint64_t be = ggml_block_elems(t.type), bb = ggml_block_bytes(t.type);
    if (be > 1 && (t.ne.empty() || t.ne[0] % be != 0))
      fail(fmt::format("{} is {} but its row length ne[0] = {} is not a multiple of the block size {}", what,
                       ggml_type_name(type), t.ne.empty() ? 0 : t.ne[0], be),
           type_at);
    if (numel / be > size_ / bb)
      fail(fmt::format("{} with shape {} of {} needs more bytes than the whole file ({})", what, shape_string(t.ne),
                       ggml_type_name(type), size_),
           dims_at);
    t.nbytes = numel / be * bb;
    offset_field.push_back(r.pos());
    t.offset = r.read<std::uint64_t>(what + " data offset");  // relative for now
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  // ---- tensor data: aligned, inside the file, not overlapping
  data_offset_ = (r.pos() + alignment_ - 1) / alignment_ * alignment_;  // pos <= size < 2^63: no overflow
  for (std::size_t i = 0; i < tensors_.size(); ++i) {
    auto& t = tensors_[i];
    const std::string what = fmt::format("tensor '{}'", t.name);
    if (t.offset % alignment_ != 0)
      fail(fmt::format("{} data offset {} is not a multiple of the alignment {}", what, t.offset, alignment_),
           offset_field[i]);
    if (data_offset_ > size_ || t.offset > size_ - data_offset_ || t.nbytes > size_ - data_offset_ - t.offset)
      fail(fmt::format("{} data ({} bytes at data offset {}, file offset {}) extends past the end of the file "
                       "({} bytes)",
                       what, t.nbytes, t.offset, data_offset_ + std::min(t.offset, size_), size_),
           offset_field[i]);
    t.offset += data_offset_;
  }
  std::vector<std::size_t> order(tensors_.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return tensors_[a].offset < tensors_[b].offset; });
  const GgufTensorInfo* prev = nullptr;
  for (std::size_t i : order) {
    const auto& t = tensors_[i];
    if (t.nbytes == 0) continue;
    if (prev && t.offset < prev->offset + prev->nbytes)
      fail(fmt::format("tensors '{}' and '{}' overlap in the data section", prev->name, t.name), offset_field[i]);
    prev = &t;
  }
}

// ---- metadata access -----------------------------------------------------------------------

bool GgufFile::has(const std::string& key) const { return kv_index_.count(key) != 0; }

const GgufKv* GgufFile::kv(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kvs_[it->second];
}

const GgufKv& GgufFile::need(const std::string& key) const {
  const GgufKv* k = kv(key);
  if (!k) throw InputError(path_.string(), fmt::format("metadata key '{}' is missing", key));
  return *k;
}

std::vector<std::string> GgufFile::keys() const {
  std::vector<std::string> out;
  out.reserve(kvs_.size());
  for (const auto& k : kvs_) out.push_back(k.key);
  return out;
}

namespace {

// Reads an integer-typed scalar at p (the caller checked the type); false when it does not fit int64.
bool int_at(GgufValueType t, const std::uint8_t* p, std::int64_t& out) {
  switch (t) {
    case GgufValueType::UINT8: case GgufValueType::BOOL: out = p[0]; return true;
    case GgufValueType::INT8: out = load<std::int8_t>(p); return true;
    case GgufValueType::UINT16: out = load<std::uint16_t>(p); return true;
    case GgufValueType::INT16: out = load<std::int16_t>(p); return true;
    case GgufValueType::UINT32: out = load<std::uint32_t>(p); return true;
    case GgufValueType::INT32: out = load<std::int32_t>(p); return true;
    case GgufValueType::INT64: out = load<std::int64_t>(p); return true;
    case GgufValueType::UINT64: {
      const auto v = load<std::uint64_t>(p);
      if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return false;
      out = static_cast<std::int64_t>(v);
      return true;
    }
    default: return false;
  }
}

double float_at(GgufValueType t, const std::uint8_t* p) {
  if (t == GgufValueType::FLOAT32) return load<float>(p);
  if (t == GgufValueType::FLOAT64) return load<double>(p);
  if (t == GgufValueType::UINT64) return static_cast<double>(load<std::uint64_t>(p));
  std::int64_t v = 0;
  int_at(t, p, v);
  return static_cast<double>(v);
}

}  // namespace

std::string GgufFile::get_string(const std::string& key) const {
  const GgufKv& k = need(key);
  if (k.type != GgufValueType::STRING)
    fail(fmt::format("metadata '{}' is {}, expected string", key, gguf_value_type_name(static_cast<std::uint32_t>(k.type))),
         k.value_offset);
  const auto n = load<std::uint64_t>(data_ + k.value_offset);
  return std::string(reinterpret_cast<const char*>(data_ + k.value_offset + 8), n);
}

std::string GgufFile::get_string(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

std::int64_t GgufFile::get_int(const std::string& key) const {
  const GgufKv& k = need(key);
  std::int64_t v = 0;
  if (!is_integer(k.type))
    fail(fmt::format("metadata '{}' is {}, expected an integer", key, gguf_value_type_name(static_cast<std::uint32_t>(k.type))),
         k.value_offset);
  if (!int_at(k.type, data_ + k.value_offset, v))
    fail(fmt::format("metadata '{}' = {} does not fit a signed 64-bit integer", key,
                     load<std::uint64_t>(data_ + k.value_offset)),
         k.value_offset);
  return v;
}

std::int64_t GgufFile::get_int(const std::string& key, std::int64_t fallback) const {
  return has(key) ? get_int(key) : fallback;
}

double GgufFile::get_float(const std::string& key) const {
  const GgufKv& k = need(key);
  if (!is_integer(k.type) && k.type != GgufValueType::FLOAT32 && k.type != GgufValueType::FLOAT64)
    fail(fmt::format("metadata '{}' is {}, expected a number", key, gguf_value_type_name(static_cast<std::uint32_t>(k.type))),
         k.value_offset);
  return float_at(k.type, data_ + k.value_offset);
}

double GgufFile::get_float(const std::string& key, double fallback) const {
  return has(key) ? get_float(key) : fallback;
}

bool GgufFile::get_bool(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const GgufKv& k = need(key);
  if (k.type != GgufValueType::BOOL)
    fail(fmt::format("metadata '{}' is {}, expected bool", key, gguf_value_type_name(static_cast<std::uint32_t>(k.type))),
         k.value_offset);
  return data_[k.value_offset] != 0;
}

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  const GgufKv& k = need(key);
  if (k.type != GgufValueType::ARRAY || k.elem_type != GgufValueType::STRING)
    fail(fmt::format("metadata '{}' is not an array of strings", key), k.value_offset);
  std::vector<std::string> out;
  out.reserve(k.count);  // validated: count <= file size / 8
  std::uint64_t p = k.value_offset;
  for (std::uint64_t i = 0; i < k.count; ++i) {
    const auto n = load<std::uint64_t>(data_ + p);
    out.emplace_back(reinterpret_cast<const char*>(data_ + p + 8), n);
    p += 8 + n;
  }
  return out;
}

std::vector<float> GgufFile::get_float_array(const std::string& key) const {
  const GgufKv& k = need(key);
  const std::uint64_t s = scalar_size(static_cast<std::uint32_t>(k.elem_type));
  if (k.type != GgufValueType::ARRAY || s == 0)
    fail(fmt::format("metadata '{}' is not an array of numbers", key), k.value_offset);
  std::vector<float> out(k.count);  // validated: count * s <= file size
  for (std::uint64_t i = 0; i < k.count; ++i)
    out[i] = static_cast<float>(float_at(k.elem_type, data_ + k.value_offset + i * s));
  return out;
}

std::vector<std::int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufKv& k = need(key);
  if (k.type != GgufValueType::ARRAY || !is_integer(k.elem_type))
    fail(fmt::format("metadata '{}' is not an array of integers", key), k.value_offset);
  const std::uint64_t s = scalar_size(static_cast<std::uint32_t>(k.elem_type));
  std::vector<std::int64_t> out(k.count);
  for (std::uint64_t i = 0; i < k.count; ++i)
    if (!int_at(k.elem_type, data_ + k.value_offset + i * s, out[i]))
      fail(fmt::format("metadata '{}'[{}] does not fit a signed 64-bit integer", key, i), k.value_offset + i * s);
  return out;
}

namespace {

// One scalar or string at p, advancing p; arrays of arrays are summarised by their element count.
std::string describe_one(GgufValueType t, const std::uint8_t* data, std::uint64_t& p, std::size_t max_chars) {
  switch (t) {
    case GgufValueType::STRING: {
      const auto n = load<std::uint64_t>(data + p);
      std::string s(reinterpret_cast<const char*>(data + p + 8), std::min<std::uint64_t>(n, max_chars * 4));
      p += 8 + n;
      return quote(s, max_chars);
    }
    case GgufValueType::BOOL: return data[p++] ? "true" : "false";
    case GgufValueType::FLOAT32: { const float f = load<float>(data + p); p += 4; return fmt::format("{}", f); }
    case GgufValueType::FLOAT64: { const double f = load<double>(data + p); p += 8; return fmt::format("{}", f); }
    case GgufValueType::UINT64: { const auto v = load<std::uint64_t>(data + p); p += 8; return fmt::format("{}", v); }
    case GgufValueType::ARRAY: {
      // Walk the nested array to find where it ends (it was validated at open).
      const auto et = load<std::uint32_t>(data + p);
      const auto n = load<std::uint64_t>(data + p + 4);
      p += 12;
      std::string out = fmt::format("[{} x {}]", gguf_value_type_name(et), n);
      for (std::uint64_t i = 0; i < n; ++i) {
        if (const std::uint64_t s = scalar_size(et)) { p += s * (n - i); break; }
        (void)describe_one(static_cast<GgufValueType>(et), data, p, 8);
      }
      return out;
    }
    default: {
      std::int64_t v = 0;
      int_at(t, data + p, v);
      p += scalar_size(static_cast<std::uint32_t>(t));
      return fmt::format("{}", v);
    }
  }
}

}  // namespace

std::string GgufFile::describe_value(const std::string& key, std::size_t max_chars) const {
  const GgufKv& k = need(key);
  if (k.type != GgufValueType::ARRAY) {
    std::uint64_t p = k.value_offset;
    return describe_one(k.type, data_, p, max_chars);
  }
  std::string out = fmt::format("[{} x {}]", gguf_value_type_name(static_cast<std::uint32_t>(k.elem_type)), k.count);
  std::uint64_t p = k.value_offset;
  for (std::uint64_t i = 0; i < k.count; ++i) {
    if (out.size() >= max_chars) {
      out += " …";
      break;
    }
    const std::string v = describe_one(k.elem_type, data_, p, 24);
    out += (i ? ", " : " ") + v;
  }
  return out;
}

// ---- tensors ---------------------------------------------------------------------------------

const GgufTensorInfo* GgufFile::find(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const std::uint8_t* GgufFile::tensor_bytes(const GgufTensorInfo& t) const { return data_ + t.offset; }

// Tensors are dequantized to float32 when loaded, not block by block inside the matmul: the models
// attnviz loads are small (a few hundred MB of floats at most), and one float32 path means the
// engine's one tuned GEMM and attention kernels serve every tensor type.
// The float32 copy is checked against --max-mib first: a K-quant stores 256 weights in as few as 84
// bytes, so a tensor of a small file can expand to 12 times the file's size.
std::vector<float> GgufFile::dequantize(const GgufTensorInfo& t) const {
  check_array_bytes(t.numel() * 4, path_.string(),
                    fmt::format("tensor '{}' ({} dequantized to float32)", t.name, ggml_type_name(static_cast<std::uint32_t>(t.type))));
  std::vector<float> out(t.numel());
  ggml_dequantize(t.type, tensor_bytes(t), out.data(), out.size());
  return out;
}

Mat GgufFile::matrix(const std::string& name, long expect_rows, long expect_cols) const {
  const GgufTensorInfo* t = find(name);
  if (!t) throw InputError(path_.string(), fmt::format("tensor '{}' is missing", name));
  const std::uint64_t cols = t->ne.empty() ? 1 : t->ne[0];
  std::uint64_t rows = 1;
  for (std::size_t i = 1; i < t->ne.size(); ++i) rows *= t->ne[i];
  if ((expect_rows >= 0 && static_cast<std::uint64_t>(expect_rows) != rows) ||
      (expect_cols >= 0 && static_cast<std::uint64_t>(expect_cols) != cols))
    throw InputError(path_.string(),
                     fmt::format("tensor '{}' has ne {} (a [{}, {}] matrix), expected [{}, {}]", name,
                                 shape_string(t->ne), rows, cols, expect_rows >= 0 ? std::to_string(expect_rows) : "*",
                                 expect_cols >= 0 ? std::to_string(expect_cols) : "*"));
  check_array_bytes(t->numel() * 4, path_.string(),
                    fmt::format("tensor '{}' ({} dequantized to float32)", name, ggml_type_name(static_cast<std::uint32_t>(t->type))));
  Mat m(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
  if (m.size() > 0) ggml_dequantize(t->type, tensor_bytes(*t), m.data(), static_cast<std::uint64_t>(m.size()));
  return m;
}

// ---- inspect -----------------------------------------------------------------------------------

std::string describe_gguf(const GgufFile& f) {
  std::string out;
  auto line = [&](const std::string& s) { out += s + "\n"; };
  const std::string arch = f.has("general.architecture") ? f.describe_value("general.architecture", 40) : "(none)";
  const std::string a = f.has("general.architecture") && f.kv("general.architecture")->type == GgufValueType::STRING
                            ? f.get_string("general.architecture")
                            : "";
  line(fmt::format("GGUF v{}, {} bytes, alignment {}, {} metadata keys, {} tensors", f.version(), grouped(f.file_size()),
                   f.alignment(), f.entries().size(), f.tensors().size()));
  line("architecture: " + arch + (f.has("general.name") ? "  name: " + f.describe_value("general.name", 60) : ""));
  // A value as text whatever its type (some models store per-layer arrays where others store one number).
  auto val = [&](const std::string& key, const std::string& dflt) {
    return f.has(key) ? f.describe_value(key, 40) : dflt;
  };
  if (!a.empty()) {
    line(fmt::format("sizes: layers {}  dim {}  heads {}  kv heads {}  ffn {}  vocab {}  context {}",
                     val(a + ".block_count", "?"), val(a + ".embedding_length", "?"),
                     val(a + ".attention.head_count", "?"),
                     val(a + ".attention.head_count_kv", val(a + ".attention.head_count", "?") + " (no key: = heads)"),
                     val(a + ".feed_forward_length", "?"),
                     val(a + ".vocab_size", f.has("tokenizer.ggml.tokens")
                                                ? std::to_string(f.kv("tokenizer.ggml.tokens")->count) + " (tokens)"
                                                : "?"),
                     val(a + ".context_length", "?")));
    if (a != "gpt2")
      line(fmt::format("rope: base {}  scaling {} x{}  dims {}", val(a + ".rope.freq_base", "10000 (no key: default)"),
                       val(a + ".rope.scaling.type", "none"), val(a + ".rope.scaling.factor", "1"),
                       val(a + ".rope.dimension_count", "head size")));
    const std::string eps = f.has(a + ".attention.layer_norm_rms_epsilon") ? a + ".attention.layer_norm_rms_epsilon"
                                                                            : a + ".attention.layer_norm_epsilon";
    if (f.has(eps)) line("norm eps: " + f.describe_value(eps, 40));
  }
  std::map<std::string, int> by_type;
  std::uint64_t params = 0, bytes = 0;
  for (const auto& t : f.tensors()) {
    ++by_type[ggml_type_name(static_cast<std::uint32_t>(t.type))];
    params += t.numel();
    bytes += t.nbytes;
  }
  std::string types;
  for (const auto& [n, c] : by_type) types += fmt::format("{}{} {}", types.empty() ? "" : ", ", n, c);
  line(fmt::format("tensors: {} ({}), {} bytes of data", f.tensors().size(), types.empty() ? "none" : types,
                   grouped(bytes)));
  line(fmt::format("parameters: {} (every tensor as stored; a separate output.weight counts)", grouped(params)));
  if (f.has("tokenizer.ggml.model")) {
    const GgufKv* tok = f.kv("tokenizer.ggml.tokens");
    line(fmt::format("tokenizer: {}, {} tokens, bos {}, eos {}{}", f.describe_value("tokenizer.ggml.model", 30),
                     tok ? std::to_string(tok->count) : "no", val("tokenizer.ggml.bos_token_id", "-"),
                     val("tokenizer.ggml.eos_token_id", "-"),
                     f.has("tokenizer.ggml.merges")
                         ? fmt::format(", {} merges", f.kv("tokenizer.ggml.merges")->count)
                         : ""));
  } else {
    line("tokenizer: none in the file");
  }
  line("metadata:");
  for (const auto& k : f.entries()) line(fmt::format("  {:<44} {}", k.key, f.describe_value(k.key, 70)));
  line("tensors:");
  std::size_t w = 4;
  for (const auto& t : f.tensors()) w = std::max(w, t.name.size());
  for (const auto& t : f.tensors())
    line(fmt::format("  {:<{}}  {:<5} {}", t.name, w, ggml_type_name(static_cast<std::uint32_t>(t.type)),
                     shape_string(t.ne)));
  return out;
}

}  // namespace attnviz
