// Image files (PNG, JPEG, PGM/PPM, BMP, GIF's first frame) decoded with stb_image into float pixels.
#pragma once
#include <filesystem>
#include <vector>

namespace attnviz {

// Pixels in [0, 1], channels-last [height, width, channels]; channels 1 (gray) or 3 (RGB; an alpha
// channel is composited over white).
struct DecodedImage {
  int height = 0, width = 0, channels = 0;
  std::vector<float> pixels;
};

// Throws InputError naming the file when it cannot be read or decoded, or is larger than 16384
// pixels a side (checked from the header before decoding).
DecodedImage read_image(const std::filesystem::path& path);

}  // namespace attnviz
