// Internal: a fast PNG encoder for Cairo ARGB32 surfaces ("up"/"sub" filters, then either a
// run-length deflate coder or zlib level 1, row by row), several times faster than cairo's libpng
// writer.
#pragma once
#include <cstdint>
#include <string>

namespace attnviz::render::detail {

// data: cairo ARGB32 (premultiplied, native-endian uint32 per pixel), `stride` bytes per row.
// Writes RGB when every pixel is opaque, else RGBA (straight alpha). dpi > 0 adds a pHYs chunk.
// small: zlib level 1 (about 3x smaller, 1.4x slower) instead of the run-length coder.
// threads: images of more than 4 MiB of pixels are coded in bands on up to this many threads
// (0 = every hardware thread).
std::string encode_png_argb32(const unsigned char* data, int width, int height, int stride, double dpi, bool small,
                              int threads = 1);

}  // namespace attnviz::render::detail
