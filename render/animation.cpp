// Animated WebP (libwebp's WebPAnimEncoder) and GIF (giflib, per-frame palettes from
// GifQuantizeBuffer) from a list of figures.
#include <attnviz/error.hpp>
#include <attnviz/io/atomic_file.hpp>
#include <attnviz/render/animation.hpp>

#include <gif_lib.h>
#include <webp/encode.h>
#include <webp/mux.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>

namespace attnviz::render {

bool animation_format_from_path(const std::filesystem::path& path, AnimationFormat& format) {
  std::string ext = path.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext == ".webp") return format = AnimationFormat::WebP, true;
  if (ext == ".gif") return format = AnimationFormat::Gif, true;
  return false;
}

namespace {

// Every frame on one canvas size, opaque: [frames][H * W * 4].
std::vector<std::vector<std::uint8_t>> canvases(const std::vector<DrawList>& frames, double scale, int& W, int& H) {
  PaintOptions po;
  po.scale = scale;
  std::vector<Raster> rs;
  W = H = 0;
  for (const auto& f : frames) {
    rs.push_back(paint_to_raster(f, po));
    W = std::max(W, rs.back().width);
    H = std::max(H, rs.back().height);
  }
  std::vector<std::vector<std::uint8_t>> out;
  for (const auto& r : rs) {
    std::vector<std::uint8_t> c(static_cast<size_t>(W) * H * 4, 255);
    for (int y = 0; y < r.height; ++y)
      for (int x = 0; x < r.width; ++x) {
        const auto* p = &r.rgba[(static_cast<size_t>(y) * r.width + x) * 4];
        auto* q = &c[(static_cast<size_t>(y) * W + x) * 4];
        const int a = p[3];   // straight alpha over white
        for (int k = 0; k < 3; ++k) q[k] = static_cast<std::uint8_t>((p[k] * a + 255 * (255 - a) + 127) / 255);
      }
    out.push_back(std::move(c));
  }
  return out;
}

std::string encode_webp(const std::vector<std::vector<std::uint8_t>>& frames, int W, int H, const AnimationOptions& opt,
                        const std::string& path) {
  WebPAnimEncoderOptions eo;
  if (!WebPAnimEncoderOptionsInit(&eo)) throw InputError(path, "libwebp version mismatch");
  eo.anim_params.loop_count = 0;   // forever
  std::unique_ptr<WebPAnimEncoder, void (*)(WebPAnimEncoder*)> enc(WebPAnimEncoderNew(W, H, &eo), WebPAnimEncoderDelete);
  if (!enc) throw InputError(path, "libwebp could not start an animation");
  WebPConfig cfg;
  if (!WebPConfigInit(&cfg)) throw InputError(path, "libwebp version mismatch");
  cfg.lossless = opt.lossless ? 1 : 0;
  cfg.quality = opt.lossless ? 50 : 90;
  int t = 0;
  for (size_t i = 0; i < frames.size(); ++i) {
    WebPPicture pic;
    if (!WebPPictureInit(&pic)) throw InputError(path, "libwebp version mismatch");
    pic.use_argb = 1;
    pic.width = W, pic.height = H;
    const bool ok = WebPPictureImportRGBA(&pic, frames[i].data(), W * 4) &&
                    WebPAnimEncoderAdd(enc.get(), &pic, t, &cfg);
    WebPPictureFree(&pic);
    if (!ok) throw InputError(path, std::string("libwebp: ") + WebPAnimEncoderGetError(enc.get()));
    t += i + 1 == frames.size() ? opt.last_frame_ms : opt.frame_ms;
  }
  WebPAnimEncoderAdd(enc.get(), nullptr, t, nullptr);
  WebPData data;
  WebPDataInit(&data);
  if (!WebPAnimEncoderAssemble(enc.get(), &data)) throw InputError(path, std::string("libwebp: ") + WebPAnimEncoderGetError(enc.get()));
  std::string bytes(reinterpret_cast<const char*>(data.bytes), data.size);
  WebPDataClear(&data);
  return bytes;
}

int gif_append(GifFileType* g, const GifByteType* data, int len) {
  auto* s = static_cast<std::string*>(g->UserData);
  s->append(reinterpret_cast<const char*>(data), static_cast<size_t>(len));
  return len;
}

std::string encode_gif(const std::vector<std::vector<std::uint8_t>>& frames, int W, int H, const AnimationOptions& opt,
                       const std::string& path) {
  std::string bytes;
  int err = 0;
  GifFileType* g = EGifOpen(&bytes, gif_append, &err);
  if (!g) throw InputError(path, std::string("giflib: ") + GifErrorString(err));
  auto fail = [&](const char* what) {
    int e = 0;
    EGifCloseFile(g, &e);
    throw InputError(path, std::string("giflib: ") + what);
  };
  EGifSetGifVersion(g, true);
  if (EGifPutScreenDesc(g, W, H, 8, 0, nullptr) == GIF_ERROR) fail("screen descriptor");
  // NETSCAPE2.0 application extension: loop forever.
  const GifByteType app[] = {'N', 'E', 'T', 'S', 'C', 'A', 'P', 'E', '2', '.', '0'};
  const GifByteType loop[] = {1, 0, 0};
  if (EGifPutExtensionLeader(g, APPLICATION_EXT_FUNC_CODE) == GIF_ERROR ||
      EGifPutExtensionBlock(g, sizeof app, app) == GIF_ERROR || EGifPutExtensionBlock(g, sizeof loop, loop) == GIF_ERROR ||
      EGifPutExtensionTrailer(g) == GIF_ERROR)
    fail("loop extension");
  const size_t n = static_cast<size_t>(W) * H;
  std::vector<GifByteType> r(n), gr(n), b(n), idx(n);
  for (size_t f = 0; f < frames.size(); ++f) {
    for (size_t i = 0; i < n; ++i) r[i] = frames[f][i * 4], gr[i] = frames[f][i * 4 + 1], b[i] = frames[f][i * 4 + 2];
    int colors = 256;
    std::vector<GifColorType> pal(256);
    if (GifQuantizeBuffer(W, H, &colors, r.data(), gr.data(), b.data(), idx.data(), pal.data()) == GIF_ERROR)
      fail("colour quantization");
    ColorMapObject* cmap = GifMakeMapObject(256, pal.data());
    if (!cmap) fail("colour map");
    GraphicsControlBlock gcb{};
    gcb.DisposalMode = DISPOSE_DO_NOT;
    gcb.DelayTime = (f + 1 == frames.size() ? opt.last_frame_ms : opt.frame_ms) / 10;   // 1/100 s
    gcb.TransparentColor = NO_TRANSPARENT_COLOR;
    GifByteType ext[4];
    const size_t len = EGifGCBToExtension(&gcb, ext);
    bool ok = EGifPutExtension(g, GRAPHICS_EXT_FUNC_CODE, static_cast<int>(len), ext) != GIF_ERROR &&
              EGifPutImageDesc(g, 0, 0, W, H, false, cmap) != GIF_ERROR;
    for (int y = 0; ok && y < H; ++y) ok = EGifPutLine(g, idx.data() + static_cast<size_t>(y) * W, W) != GIF_ERROR;
    GifFreeMapObject(cmap);
    if (!ok) fail("writing a frame");
  }
  if (EGifCloseFile(g, &err) == GIF_ERROR) throw InputError(path, std::string("giflib: ") + GifErrorString(err));
  return bytes;
}

}  // namespace

AnimationInfo write_animation(const std::vector<DrawList>& frames, const std::filesystem::path& out,
                              const AnimationOptions& opt) {
  AnimationFormat fmt;
  if (!animation_format_from_path(out, fmt))
    throw UsageError("an animation is written as .webp or .gif, not '" + out.extension().string() + "'");
  if (frames.empty()) throw UsageError("no frames to animate");
  AnimationInfo info;
  const auto pixels = canvases(frames, opt.scale, info.width, info.height);
  info.frames = static_cast<int>(frames.size());
  const std::string bytes = fmt == AnimationFormat::WebP ? encode_webp(pixels, info.width, info.height, opt, out.string())
                                                         : encode_gif(pixels, info.width, info.height, opt, out.string());
  write_file_atomically(out, bytes);
  return info;
}

}  // namespace attnviz::render
