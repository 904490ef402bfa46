// Internal: a fast PNG encoder for Cairo ARGB32 surfaces (zlib level 1, "sub" filter), about 5x
// faster than cairo's libpng writer on plot-like images at a similar size.
#pragma once
#include <cstdint>
#include <string>

namespace attnviz::render::detail {

// data: cairo ARGB32 (premultiplied, native-endian uint32 per pixel), `stride` bytes per row.
// Writes RGB when every pixel is opaque, else RGBA (straight alpha). dpi > 0 adds a pHYs chunk.
std::string encode_png_argb32(const unsigned char* data, int width, int height, int stride, double dpi);

}  // namespace attnviz::render::detail
