// A fast PNG encoder for Cairo ARGB32 surfaces: up/sub filters, then a run-length deflate coder
// (fast) or zlib level 1 (small), row by row, on several threads for big images.
#include "png_encode.hpp"

#include <attnviz/error.hpp>

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <memory>
#include <thread>
#include <utility>
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

constexpr std::uint32_t kAdlerMod = 65521;

// An output buffer that is not zero-filled: only the bytes written cost page faults.
struct Buffer {
  std::unique_ptr<unsigned char[]> p;
  size_t capacity = 0;
  unsigned char* reserve(size_t n) {
    if (n > capacity) p.reset(new unsigned char[n]), capacity = n;
    return p.get();
  }
  unsigned char* data() const { return p.get(); }
};

// Fixed-Huffman codes (RFC 1951 section 3.2.6), bit-reversed for an LSB-first bit writer.
struct FixedCodes {
  std::uint32_t lit_code[256]{}, len_code[259]{};
  int lit_bits[256]{}, len_bits[259]{};

  static std::uint32_t reverse(std::uint32_t code, int bits) {
    std::uint32_t r = 0;
    for (int b = 0; b < bits; ++b) r |= ((code >> b) & 1u) << (bits - 1 - b);
    return r;
  }
  FixedCodes() {
    for (int v = 0; v < 256; ++v) {
      if (v < 144) lit_code[v] = reverse(0x30 + v, 8), lit_bits[v] = 8;
      else lit_code[v] = reverse(0x190 + (v - 144), 9), lit_bits[v] = 9;
    }
    // Length symbols 257..285 with their base lengths and extra bits; the extra bits are folded
    // into len_code so that a match length is one put().
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
      len_code[len] = code | (static_cast<std::uint32_t>(len - base[s]) << bits);
      len_bits[len] = bits + extra[s];
    }
  }
};
const FixedCodes& fixed_codes() {
  static const FixedCodes c;
  return c;
}

// Raw deflate as one fixed-Huffman block that codes runs of a repeated byte as distance-1 matches
// and everything else as literals. Filtered plot rows are long runs of zeros, so this is several
// times faster than zlib's level 1 at a modestly larger size. Rows are fed one at a time.
class RleDeflate {
 public:
  RleDeflate(Buffer& out, size_t capacity) : out_(out), c_(fixed_codes()), p_(out.reserve(capacity)) {}

  void begin_block(bool final) { put(final ? 1 : 0, 1), put(1, 2); }  // BFINAL, BTYPE = 01

  void data(const unsigned char* d, size_t n) {
    size_t i = 0;
    while (i < n) {
      if (have_prev_) {
        // Length of the run of the previous byte starting at i (<= 258), 8 bytes at a time.
        const unsigned char c = prev_;
        const std::uint64_t pat = 0x0101010101010101ull * c;
        size_t r = 0, lim = std::min<size_t>(258, n - i);
        while (r + 8 <= lim) {
          std::uint64_t w;
          std::memcpy(&w, d + i + r, 8);
          if (std::uint64_t x = w ^ pat) {
            r += static_cast<size_t>(__builtin_ctzll(x)) / 8;
            goto counted;
          }
          r += 8;
        }
        while (r < lim && d[i + r] == c) ++r;
      counted:
        if (r >= 3) {
          match(r, c);
          i += r;
          continue;
        }
      }
      literal(d[i]);
      ++i;
    }
  }

  // n zero bytes (an "up"-filtered row equal to the one above), without reading them.
  void zeros(size_t n) {
    if (n > 0 && !(have_prev_ && prev_ == 0)) literal(0), --n;
    for (; n >= 258; n -= 258) match(258, 0);
    if (n >= 3) match(n, 0);
    else
      for (; n > 0; --n) literal(0);
  }

  // Adler-32 of every byte coded so far, kept as the bytes are coded (a run of r bytes c is one
  // step: a += r c, b += r a + c r (r + 1) / 2), so the rows are not read a second time.
  std::uint32_t adler() {
    reduce();
    return static_cast<std::uint32_t>(b_ << 16 | a_);
  }

  // Ends the block; a non-final part is padded to a byte with an empty stored block (a sync flush),
  // so that the next part, coded on another thread, starts on a byte of its own.
  size_t finish(bool final) {
    put(0, 7);  // end of block (symbol 256)
    if (!final) {
      put(0, 3);  // BFINAL = 0, BTYPE = 00
      align();
      put(0, 16), put(0xFFFF, 16);  // LEN, NLEN
    }
    align();
    flush_bytes();
    return static_cast<size_t>(p_ - out_.data());
  }

 private:
  void literal(unsigned char v) {
    put(c_.lit_code[v], c_.lit_bits[v]);
    prev_ = v, have_prev_ = true;
    a_ += v, b_ += a_;
    if (++unreduced_ == 4096) reduce();  // keeps b_ far below 2^64
  }
  void match(size_t r, unsigned char c) {
    put(c_.len_code[r], c_.len_bits[r]);
    put(0, 5);  // distance code 0 = distance 1
    b_ += r * a_ + c * (r * (r + 1) / 2);
    a_ += r * c;
    reduce();
  }
  void reduce() {
    a_ %= kAdlerMod, b_ %= kAdlerMod;
    unreduced_ = 0;
  }
  void put(std::uint32_t bits, int n) {
    acc_ |= static_cast<std::uint64_t>(bits) << nacc_;
    nacc_ += n;
    if (nacc_ >= 32) {
      std::memcpy(p_, &acc_, 8);  // little-endian: the low 4 bytes are the next 32 bits
      p_ += 4;
      acc_ >>= 32;
      nacc_ -= 32;
    }
  }
  void align() {
    if (nacc_ % 8) put(0, 8 - nacc_ % 8);
  }
  void flush_bytes() {
    for (; nacc_ > 0; nacc_ -= 8) *p_++ = static_cast<unsigned char>(acc_), acc_ >>= 8;
    nacc_ = 0, acc_ = 0;
  }

  Buffer& out_;
  const FixedCodes& c_;
  unsigned char* p_;
  std::uint64_t acc_ = 0;
  int nacc_ = 0;
  unsigned char prev_ = 0;
  bool have_prev_ = false;
  std::uint64_t a_ = 1, b_ = 0;
  int unreduced_ = 0;
};

struct ImageView {
  const unsigned char* data;
  int width, height, stride;
  bool opaque;
  size_t row_bytes;  // filter byte + pixels
  const std::uint32_t* row(int y) const { return reinterpret_cast<const std::uint32_t*>(data + static_cast<size_t>(y) * stride); }
  bool same_as_above(int y) const {
    return y > 0 && std::memcmp(row(y), row(y - 1), static_cast<size_t>(width) * 4) == 0;
  }
};

// Byte-wise x - y of four packed bytes (no borrow between bytes).
inline std::uint32_t bytes_minus(std::uint32_t x, std::uint32_t y) {
  constexpr std::uint32_t H = 0x80808080u;
  return ((x | H) - (y & ~H)) ^ ((x ^ ~y) & H);
}

// Filters row y into f (filter byte included; f has one byte to spare at the end). Opaque rows: "up"
// (each byte minus the byte above) when more pixels equal the one above than the one to the left
// (a row of cells crossed by label text), else "sub" (minus the pixel to the left: the first row of
// a row of cells). Rows with alpha: "sub".
void filter_row(const ImageView& im, int y, unsigned char* f) {
  const std::uint32_t* row = im.row(y);
  unsigned char* o = f + 1;
  if (im.opaque) {
    // Premultiplied equals straight colour when alpha is 255; 0xAARRGGBB becomes R, G, B.
    const std::uint32_t* above = y > 0 ? im.row(y - 1) : nullptr;
    int eq_up = 0, eq_left = 0;
    if (above)
      for (int x = 1; x < im.width; ++x) eq_up += row[x] == above[x], eq_left += row[x] == row[x - 1];
    f[0] = above && eq_up > eq_left ? 2 : 1;
    for (int x = 0; x < im.width; ++x, o += 3) {
      const std::uint32_t ref = f[0] == 2 ? above[x] : x > 0 ? row[x - 1] : 0u;
      const std::uint32_t d = __builtin_bswap32(bytes_minus(row[x], ref)) >> 8;  // R, G, B, 0 in memory
      std::memcpy(o, &d, 4);
    }
  } else {
    f[0] = 1;
    unsigned pr = 0, pg = 0, pb = 0, pa = 0;
    for (int x = 0; x < im.width; ++x, o += 4) {
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

// One part of the image (rows [y0, y1)) as raw deflate, with the Adler-32 and length of its filtered
// bytes; the parts concatenate into one stream (each non-final part ends on a sync flush).
struct Part {
  int y0 = 0, y1 = 0;
  bool final = false;
  Buffer z;
  size_t zlen = 0;
  std::uint32_t adler = 1;
  std::uint32_t crc = 0;  // CRC-32 of z[0, zlen)
  std::exception_ptr error;
};

void encode_part(const ImageView& im, bool small, Part& part) {
  thread_local std::vector<unsigned char> rowbuf;
  rowbuf.resize(im.row_bytes + 1);
  const size_t raw = im.row_bytes * static_cast<size_t>(part.y1 - part.y0);
  std::uint32_t adler = 1;
  if (!small) {
    // Worst case: 9 bits per byte, plus block framing.
    RleDeflate rle(part.z, raw + raw / 8 + 64);
    rle.begin_block(part.final);
    for (int y = part.y0; y < part.y1; ++y) {
      if (im.same_as_above(y)) {  // filter "up": the row is all zeros
        const unsigned char two = 2;
        rle.data(&two, 1);
        rle.zeros(im.row_bytes - 1);
      } else {
        filter_row(im, y, rowbuf.data());
        rle.data(rowbuf.data(), im.row_bytes);
      }
    }
    adler = rle.adler();
    part.zlen = rle.finish(part.final);
  } else {
    // zlib level 1 (raw deflate): a real LZ77 search finds repeats in text rows too (~3x smaller).
    z_stream zs{};
    if (deflateInit2(&zs, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw InputError("", "PNG compression failed");
    const size_t bound = deflateBound(&zs, static_cast<uLong>(raw)) + 16;
    zs.next_out = part.z.reserve(bound);
    zs.avail_out = static_cast<uInt>(bound);
    int rc = Z_OK;
    for (int y = part.y0; y < part.y1 && rc == Z_OK; ++y) {
      if (im.same_as_above(y)) {
        rowbuf[0] = 2;
        std::memset(rowbuf.data() + 1, 0, im.row_bytes - 1);
      } else {
        filter_row(im, y, rowbuf.data());
      }
      adler = adler32(adler, rowbuf.data(), static_cast<uInt>(im.row_bytes));
      zs.next_in = rowbuf.data();
      zs.avail_in = static_cast<uInt>(im.row_bytes);
      const bool last = y + 1 == part.y1;
      rc = deflate(&zs, !last ? Z_NO_FLUSH : part.final ? Z_FINISH : Z_SYNC_FLUSH);
      if (rc == Z_OK && zs.avail_in != 0) rc = Z_BUF_ERROR;
    }
    part.zlen = zs.total_out;
    deflateEnd(&zs);
    if (rc != (part.final ? Z_STREAM_END : Z_OK)) throw InputError("", "PNG compression failed");
  }
  part.adler = adler;
  part.crc = static_cast<std::uint32_t>(crc32(0, part.z.data(), static_cast<uInt>(part.zlen)));
}

}  // namespace

std::string encode_png_argb32(const unsigned char* data, int width, int height, int stride, double dpi, bool small,
                              int threads) {
  // Opaque when every alpha byte is 255 (an AND over all pixels; branch-free so it vectorizes).
  std::uint32_t all = 0xFFFFFFFFu;
  for (int y = 0; y < height; ++y) {
    auto* row = reinterpret_cast<const std::uint32_t*>(data + static_cast<size_t>(y) * stride);
    for (int x = 0; x < width; ++x) all &= row[x];
  }
  const bool opaque = (all >> 24) == 255;
  const ImageView im{data, width, height, stride, opaque, static_cast<size_t>(width) * (opaque ? 3 : 4) + 1};

  // Big images are cut into horizontal bands coded on their own threads (as pigz does): each band
  // is a deflate block ending on a byte boundary, and their Adler-32s and CRC-32s combine.
  const size_t raw = im.row_bytes * static_cast<size_t>(height);
  constexpr size_t kBytesPerThread = 4 << 20;
  int t = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  t = static_cast<int>(std::clamp<size_t>(raw / kBytesPerThread, 1, static_cast<size_t>(std::max(1, t))));
  t = std::min(t, height);
  std::vector<Part> parts(static_cast<size_t>(t));
  for (int i = 0; i < t; ++i) {
    parts[i].y0 = static_cast<int>(static_cast<long>(height) * i / t);
    parts[i].y1 = static_cast<int>(static_cast<long>(height) * (i + 1) / t);
    parts[i].final = i + 1 == t;
  }
  // Band 0 keeps its buffer across calls on this thread (fresh multi-megabyte allocations cost page
  // faults); the other bands are only used for big images.
  thread_local Buffer z0;
  std::swap(parts[0].z, z0);
  auto run = [&](Part& p) {
    try {
      encode_part(im, small, p);
    } catch (...) {
      p.error = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  for (int i = 1; i < t; ++i) pool.emplace_back(run, std::ref(parts[i]));
  run(parts[0]);
  for (auto& th : pool) th.join();
  for (auto& p : parts)
    if (p.error) {
      std::swap(parts[0].z, z0);
      std::rethrow_exception(p.error);
    }

  std::uint32_t adler = parts[0].adler;
  size_t zlen = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) {
      const size_t len = im.row_bytes * static_cast<size_t>(parts[i].y1 - parts[i].y0);
      adler = static_cast<std::uint32_t>(adler32_combine(adler, parts[i].adler, static_cast<z_off_t>(len)));
    }
    zlen += parts[i].zlen;
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
  // IDAT: the zlib header (deflate, 32K window, fastest), the bands, the Adler-32; written in place.
  const size_t idat_len = 2 + zlen + 4;
  if (idat_len > 0x7FFFFFFFu) {
    std::swap(parts[0].z, z0);
    throw InputError("", "the PNG's compressed pixels exceed 2 GiB; use .svg/.pdf or a lower --scale");
  }
  out.reserve(out.size() + 12 + idat_len + 12);
  put32(out, static_cast<std::uint32_t>(idat_len));
  const size_t type_at = out.size();
  out += "IDAT";
  out += '\x78', out += '\x01';
  std::uint32_t crc = static_cast<std::uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(out.data() + type_at), 6));
  for (const auto& p : parts) {
    out.append(reinterpret_cast<const char*>(p.z.data()), p.zlen);
    crc = static_cast<std::uint32_t>(crc32_combine(crc, p.crc, static_cast<z_off_t>(p.zlen)));
  }
  const size_t adler_at = out.size();
  put32(out, adler);
  crc = static_cast<std::uint32_t>(crc32(crc, reinterpret_cast<const Bytef*>(out.data() + adler_at), 4));
  put32(out, crc);
  chunk(out, "IEND", "");
  std::swap(parts[0].z, z0);
  return out;
}

}  // namespace attnviz::render::detail
