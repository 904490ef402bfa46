// Internal: a fast PNG encoder for Cairo ARGB32 surfaces ("up"/"sub" filters, then either a
// run-length deflate coder or zlib level 1), several times faster than cairo's libpng writer.
#pragma once
#include <cstdint>
#include <string>

namespace attnviz::render::detail {

// data: cairo ARGB32 (premultiplied, native-endian uint32 per pixel), `stride` bytes per row.
// Writes RGB when every pixel is opaque, else RGBA (straight alpha). dpi > 0 adds a pHYs chunk.
// small: zlib level 1 (about 3x smaller, 1.4x slower) instead of the run-length coder.
std::string encode_png_argb32(const unsigned char* data, int width, int height, int stride, double dpi, bool small);

}  // namespace attnviz::render::detail
