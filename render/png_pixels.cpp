// Plain pixel PNGs (no text) through stb_image_write, written atomically.
#include <attnviz/io/atomic_file.hpp>
#include <attnviz/error.hpp>
#include <attnviz/render/draw.hpp>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb/stb_image_write.h>

#include <string>

namespace attnviz::render {

namespace {
void append(void* ctx, void* data, int size) { static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), size); }
}  // namespace

void write_png_pixels(const std::filesystem::path& path, int width, int height, const std::vector<std::uint8_t>& rgba) {
  if (width <= 0 || height <= 0 || rgba.size() != static_cast<size_t>(width) * height * 4)
    throw InputError(path.string(), "pixel buffer of " + std::to_string(rgba.size()) + " bytes does not match " +
                                        std::to_string(width) + "x" + std::to_string(height) + " RGBA");
  std::string bytes;
  if (!stbi_write_png_to_func(append, &bytes, width, height, 4, rgba.data(), width * 4))
    throw InputError(path.string(), "PNG encoding failed");
  write_file_atomically(path, bytes);
}

}  // namespace attnviz::render
