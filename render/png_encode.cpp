// A fast PNG encoder for Cairo ARGB32 surfaces: "sub" filter + zlib level 1 (plots are flat areas).
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
}  // namespace

std::string encode_png_argb32(const unsigned char* data, int width, int height, int stride, double dpi) {
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
  // zlib level 1: filtered plot rows are mostly runs of zeros, which the fastest level already finds.
  z_stream zs{};
  if (deflateInit2(&zs, 1, Z_DEFLATED, 15, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw InputError("", "PNG compression failed");
  z.resize(deflateBound(&zs, static_cast<uLong>(raw.size())));
  zs.next_in = raw.data();
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = z.data();
  zs.avail_out = static_cast<uInt>(z.size());
  int rc = deflate(&zs, Z_FINISH);
  size_t zlen = zs.total_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) throw InputError("", "PNG compression failed");

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
