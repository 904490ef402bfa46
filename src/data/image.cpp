// Image decoding through stb_image (Debian libstb): dimensions checked from the header first.
#include <attnviz/data/image.hpp>
#include <attnviz/error.hpp>
#include <attnviz/io/atomic_file.hpp>

#include <fmt/core.h>
#include <stb/stb_image.h>

#include <memory>

namespace attnviz {

DecodedImage read_image(const std::filesystem::path& file) {
  const std::string path = file.string();
  const std::string bytes = read_file(file);
  if (bytes.size() > (1u << 30)) throw InputError(path, "image file larger than 1 GiB");
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int len = static_cast<int>(bytes.size());
  int w = 0, h = 0, c = 0;
  if (!stbi_info_from_memory(data, len, &w, &h, &c))
    throw InputError(path, fmt::format("not an image stb_image can read (PNG, JPEG, PGM/PPM, BMP, GIF): {}", stbi_failure_reason()));
  if (w <= 0 || h <= 0 || w > 16384 || h > 16384)
    throw InputError(path, fmt::format("image of {}x{} pixels (at most 16384 a side)", w, h));
  const int want = (c == 1 || c == 2) ? 2 : 4;   // keep alpha to composite it over white
  std::unique_ptr<stbi_uc, void (*)(void*)> px(stbi_load_from_memory(data, len, &w, &h, &c, want), &stbi_image_free);
  if (!px) throw InputError(path, fmt::format("cannot decode the image: {}", stbi_failure_reason()));
  DecodedImage img;
  img.height = h;
  img.width = w;
  img.channels = want == 2 ? 1 : 3;
  img.pixels.resize(static_cast<size_t>(w) * h * img.channels);
  for (size_t i = 0; i < static_cast<size_t>(w) * h; ++i) {
    const stbi_uc* p = px.get() + i * want;
    const float a = p[want - 1] / 255.f;
    for (int ch = 0; ch < img.channels; ++ch)
      img.pixels[i * img.channels + ch] = (p[ch] / 255.f) * a + (1.f - a);
  }
  return img;
}

}  // namespace attnviz
