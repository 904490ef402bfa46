// A fast PNG encoder for Cairo ARGB32 surfaces: up/sub filters, then a run-length deflate coder
// (fast) or zlib level 1 (small).
#include "png_encode.hpp"

#include <attnviz/error.hpp>

#include <zlib.h>

#include <cmath>
#include <cstring>
#include <vector>

namespace attnviz::render::detail {

namespace {
void put32(std::string& s, std::uint32_t v) {
  s += static_cast<char>(v >> 24), s += static_cast<char>(v >> 16), s += static_cast<char>(v >> 8), s += static_cast<char>(v);
}
void chunk(std::string& out, const char* type, const std::string& body) {
  put32(out, static_cast<std::uint32_t>(body.size()));
  std::string tb = std::string(type, 4) + body;
  out += tb;
  put32(out, static_cast<std::uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(tb.data()), static_cast<uInt>(tb.size()))));
}
// A zlib stream of one fixed-Huffman deflate block that codes runs of a repeated byte as
// distance-1 matches (RFC 1951 section 3.2.6) and everything else as literals. Filtered plot
// rows are long runs of zeros, so this is ~3x faster than zlib's level 1 at a modestly larger size.
class RleDeflate {
 public:
  explicit RleDeflate(std::vector<unsigned char>& out) : out_(out) { init_tables(); }

  void encode(const unsigned char* data, size_t n) {
    out_.clear();
    out_.reserve(n / 4 + 64);
    out_.push_back(0x78), out_.push_back(0x01);  // zlib header: deflate, 32K window, fastest
    put(1, 1), put(1, 2);                           // BFINAL = 1, BTYPE = 01 (fixed Huffman)
    size_t i = 0;
    while (i < n) {
      if (i > 0) {
        // Length of the run of data[i - 1] starting at i (<= 258), 8 bytes at a time.
        const unsigned char c = data[i - 1];
        const std::uint64_t pat = 0x0101010101010101ull * c;
        size_t r = 0, lim = std::min<size_t>(258, n - i);
        while (r + 8 <= lim) {
          std::uint64_t w;
          std::memcpy(&w, data + i + r, 8);
          std::uint64_t x = w ^ pat;
          if (x) {
            r += static_cast<size_t>(__builtin_ctzll(x)) / 8;
            goto counted;
          }
          r += 8;
        }
        while (r < lim && data[i + r] == c) ++r;
      counted:
        if (r >= 3) {
          put(len_code_[r], len_bits_[r]);
          put(0, 5);  // distance code 0 = distance 1
          i += r;
          continue;
        }
      }
      put(lit_code_[data[i]], lit_bits_[data[i]]);
      ++i;
    }
    put(0, 7);  // end of block (symbol 256)
    flush();
    std::uint32_t ad = static_cast<std::uint32_t>(adler32(1, data, static_cast<uInt>(n)));
    out_.push_back(static_cast<unsigned char>(ad >> 24)), out_.push_back(static_cast<unsigned char>(ad >> 16));
    out_.push_back(static_cast<unsigned char>(ad >> 8)), out_.push_back(static_cast<unsigned char>(ad));
  }

 private:
  static std::uint32_t reverse(std::uint32_t code, int bits) {
    std::uint32_t r = 0;
    for (int b = 0; b < bits; ++b) r |= ((code >> b) & 1u) << (bits - 1 - b);
    return r;
  }
  void init_tables() {
    for (int v = 0; v < 256; ++v) {
      if (v < 144) lit_code_[v] = reverse(0x30 + v, 8), lit_bits_[v] = 8;
      else lit_code_[v] = reverse(0x190 + (v - 144), 9), lit_bits_[v] = 9;
    }
    // Length symbols 257..285 with their base lengths and extra bits.
    static const int base[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
    static const int extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                                  3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
    for (int len = 3; len <= 258; ++len) {
      int s = 28;
      while (base[s] > len) --s;
      if (len == 258) s = 28;
      else if (s == 28) s = 27;
      int sym = 257 + s;
      // Fixed codes: 256..279 are 7 bits (0..23), 280..287 are 8 bits (0xC0..0xC7).
      std::uint32_t code = sym < 280 ? reverse(sym - 256, 7) : reverse(0xC0 + (sym - 280), 8);
      int bits = sym < 280 ? 7 : 8;
      len_code_[len] = code | (static_cast<std::uint32_t>(len - base[s]) << bits);
      len_bits_[len] = bits + extra[s];
    }
  }
  void put(std::uint32_t bits, int n) {
    acc_ |= static_cast<std::uint64_t>(bits) << nacc_;
    nacc_ += n;
    while (nacc_ >= 8) {
      out_.push_back(static_cast<unsigned char>(acc_));
      acc_ >>= 8;
      nacc_ -= 8;
    }
  }
  void flush() {
    if (nacc_ > 0) out_.push_back(static_cast<unsigned char>(acc_));
    acc_ = 0, nacc_ = 0;
  }

  std::vector<unsigned char>& out_;
  std::uint64_t acc_ = 0;
  int nacc_ = 0;
  std::uint32_t lit_code_[256]{}, len_code_[259]{};
  int lit_bits_[256]{}, len_bits_[259]{};
};

}  // namespace

std::string encode_png_argb32(const unsigned char* data, int width, int height, int stride, double dpi, bool small) {
  // Opaque when every alpha byte is 255 (an AND over all pixels; branch-free so it vectorizes).
  std::uint32_t all = 0xFFFFFFFFu;
  for (int y = 0; y < height; ++y) {
    auto* row = reinterpret_cast<const std::uint32_t*>(data + static_cast<size_t>(y) * stride);
    for (int x = 0; x < width; ++x) all &= row[x];
  }
  const bool opaque = (all >> 24) == 255;
  const int bpp = opaque ? 3 : 4;
  const size_t row_bytes = static_cast<size_t>(width) * bpp + 1;
  // Buffers reused across calls on a thread: fresh multi-megabyte allocations cost page faults.
  thread_local std::vector<unsigned char> raw, z;
  raw.resize(row_bytes * height);
  for (int y = 0; y < height; ++y) {
    auto* row = reinterpret_cast<const std::uint32_t*>(data + static_cast<size_t>(y) * stride);
    unsigned char* f = &raw[row_bytes * y];
    // A row equal to the one above (most rows of a heatmap cell) is filter "up": all zeros.
    if (y > 0 && std::memcmp(row, data + static_cast<size_t>(y - 1) * stride, static_cast<size_t>(width) * 4) == 0) {
      f[0] = 2;
      std::memset(f + 1, 0, row_bytes - 1);
      continue;
    }
    // Otherwise filter "sub": each byte minus the same byte of the pixel to the left.
    f[0] = 1;
    unsigned char* o = f + 1;
    if (opaque) {
      // Premultiplied equals straight colour when alpha is 255.
      std::uint32_t prev = 0;
      for (int x = 0; x < width; ++x, o += 3) {
        std::uint32_t px = row[x];
        o[0] = static_cast<unsigned char>((px >> 16) - (prev >> 16));
        o[1] = static_cast<unsigned char>((px >> 8) - (prev >> 8));
        o[2] = static_cast<unsigned char>(px - prev);
        prev = px;
      }
    } else {
      unsigned pr = 0, pg = 0, pb = 0, pa = 0;
      for (int x = 0; x < width; ++x, o += 4) {
        std::uint32_t px = row[x], a = px >> 24;
        std::uint32_t r = (px >> 16) & 255, g = (px >> 8) & 255, b = px & 255;
        if (a != 255) {  // un-premultiply
          r = a ? (r * 255 + a / 2) / a : 0, g = a ? (g * 255 + a / 2) / a : 0, b = a ? (b * 255 + a / 2) / a : 0;
        }
        o[0] = static_cast<unsigned char>(r - pr), o[1] = static_cast<unsigned char>(g - pg);
        o[2] = static_cast<unsigned char>(b - pb), o[3] = static_cast<unsigned char>(a - pa);
        pr = r, pg = g, pb = b, pa = a;
      }
    }
  }
  size_t zlen = 0;
  if (!small) {
    RleDeflate(z).encode(raw.data(), raw.size());
    zlen = z.size();
  } else {
    // zlib level 1: a real LZ77 search finds repeats in text rows too (~3x smaller files).
    z_stream zs{};
    if (deflateInit2(&zs, 1, Z_DEFLATED, 15, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw InputError("", "PNG compression failed");
    z.resize(deflateBound(&zs, static_cast<uLong>(raw.size())));
    zs.next_in = raw.data();
    zs.avail_in = static_cast<uInt>(raw.size());
    zs.next_out = z.data();
    zs.avail_out = static_cast<uInt>(z.size());
    int rc = deflate(&zs, Z_FINISH);
    zlen = zs.total_out;
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) throw InputError("", "PNG compression failed");
  }

  std::string out("\x89PNG\r\n\x1a\n", 8);
  std::string ihdr;
  put32(ihdr, static_cast<std::uint32_t>(width));
  put32(ihdr, static_cast<std::uint32_t>(height));
  ihdr += static_cast<char>(8);                  // bit depth
  ihdr += static_cast<char>(opaque ? 2 : 6);     // colour type: RGB / RGBA
  ihdr += std::string("\0\0\0", 3);              // compression, filter, interlace
  chunk(out, "IHDR", ihdr);
  if (dpi > 0) {
    std::string phys;
    auto ppm = static_cast<std::uint32_t>(std::lround(dpi / 0.0254));
    put32(phys, ppm);
    put32(phys, ppm);
    phys += static_cast<char>(1);  // unit: metre
    chunk(out, "pHYs", phys);
  }
  chunk(out, "IDAT", std::string(reinterpret_cast<const char*>(z.data()), zlen));
  chunk(out, "IEND", "");
  return out;
}

}  // namespace attnviz::render::detail
