// Animations of figures (attention over training, `render evolution`): animated WebP through
// Debian's libwebp (WebPAnimEncoder, libwebpmux) or GIF through giflib.
#pragma once
#include <attnviz/render/draw.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace attnviz::render {

enum class AnimationFormat { WebP, Gif };
// From the extension (.webp / .gif, case-insensitive); false for anything else.
bool animation_format_from_path(const std::filesystem::path& path, AnimationFormat& format);

struct AnimationOptions {
  int frame_ms = 400;        // display time of each frame
  int last_frame_ms = 1500;  // the last frame stays longer (the trained model)
  double scale = 1;          // pixels per point
  bool lossless = true;      // WebP: lossless frames (crisp text); false = quality 90
};

// Paints every frame (canvas = the largest frame; smaller ones sit top-left on white) and writes
// an endlessly looping animation, atomically. Returns the canvas size in pixels.
struct AnimationInfo {
  int width = 0, height = 0, frames = 0;
};
AnimationInfo write_animation(const std::vector<DrawList>& frames, const std::filesystem::path& out,
                              const AnimationOptions& opt = {});

}  // namespace attnviz::render
