// Overlay: a patch-grid attention map upsampled bilinearly over the record's image, alpha-blended;
// single images, strips and labelled grids of many images.
#include <attnviz/error.hpp>
#include <attnviz/render/plots.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace attnviz::render {

namespace {
// The self-attention tensor of the highest layer (vision encoders record "vit.layerN.self").
const AttentionTensor& default_overlay_tensor(const AttentionRecord& record) {
  const AttentionTensor* best = nullptr;
  int best_layer = -2;
  for (const auto& t : record.tensors) {
    TensorName tn = parse_tensor_name(t.name);
    if (tn.kind == "self" && tn.layer > best_layer) best = &t, best_layer = tn.layer;
  }
  if (!best && !record.tensors.empty()) best = &record.tensors.back();
  if (!best) throw InputError("", "the record holds no attention tensors");
  return *best;
}

// Bilinear sample of a [rows, cols] grid whose cell centres are at ((c + 0.5) / cols, (r + 0.5) / rows)
// of the unit square; u, v in [0, 1]; edges are clamped.
double bilinear(const float* data, int rows, int cols, double u, double v) {
  double x = std::clamp(u * cols - 0.5, 0.0, cols - 1.0), y = std::clamp(v * rows - 0.5, 0.0, rows - 1.0);
  int x0 = static_cast<int>(x), y0 = static_cast<int>(y);
  int x1 = std::min(x0 + 1, cols - 1), y1 = std::min(y0 + 1, rows - 1);
  double fx = x - x0, fy = y - y0;
  auto at = [&](int r, int c) { return static_cast<double>(data[static_cast<size_t>(r) * cols + c]); };
  return (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1)) + fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1));
}
}  // namespace

const AttentionTensor& overlay_tensor(const AttentionRecord& record, const std::string& name) {
  return name.empty() ? default_overlay_tensor(record) : select_tensor(record, name);
}

std::vector<OverlayPanel> overlay_head_strip(const AttentionRecord& record, const OverlaySelection& sel) {
  if (!record.image) throw UsageError("the record has no image to overlay attention on");
  const AttentionTensor& t = overlay_tensor(record, sel.tensor);
  std::vector<OverlayPanel> out;
  out.push_back(OverlayPanel{*record.image, Mat(), "image", kBlack});
  OverlaySelection s = sel;
  s.tensor = t.name;
  s.mean_heads = false;
  for (int h = 0; h < t.heads; ++h) {
    s.head = h;
    out.push_back(OverlayPanel{*record.image, patch_map(record, s), fmt::format("head {}", h), kBlack});
  }
  if (t.heads > 1) {
    s.mean_heads = true;
    out.push_back(OverlayPanel{*record.image, patch_map(record, s), "mean of heads", kBlack});
  }
  return out;
}

Mat patch_map(const AttentionRecord& record, const OverlaySelection& sel) {
  if (!record.image) throw UsageError("the record has no image to overlay attention on");
  const RecordImage& im = *record.image;
  if (im.patch_rows <= 0 || im.patch_cols <= 0) throw UsageError("the record's image has no patch grid");
  const AttentionTensor& t = overlay_tensor(record, sel.tensor);
  const int P = im.patch_rows * im.patch_cols;
  if (t.keys != im.prefix_tokens + P)
    throw UsageError(fmt::format("tensor '{}' has {} keys, but the image has {} prefix tokens + {}x{} patches",
                                 t.name, t.keys, im.prefix_tokens, im.patch_rows, im.patch_cols));
  if (sel.query < 0 || sel.query >= t.queries)
    throw UsageError(fmt::format("query {} is out of range: tensor '{}' has {} queries", sel.query, t.name, t.queries));
  if (!sel.mean_heads && (sel.head < 0 || sel.head >= t.heads))
    throw UsageError(fmt::format("head {} is out of range: tensor '{}' has {} heads", sel.head, t.name, t.heads));
  Mat m(im.patch_rows, im.patch_cols);  // [rows, cols]
  for (int p = 0; p < P; ++p) {
    double v = 0;
    if (sel.mean_heads) {
      for (int h = 0; h < t.heads; ++h) v += t.at(h, sel.query, im.prefix_tokens + p);
      v /= t.heads;
    } else {
      v = t.at(sel.head, sel.query, im.prefix_tokens + p);
    }
    m.data()[p] = static_cast<float>(v);
  }
  return m;
}

Raster blend_overlay(const RecordImage& image, const Mat& map, const ValueRange& range, const OverlayOptions& opt,
                     int side) {
  // image: [H, W] in [0, 1]; map: [rows, cols] (empty = image only) -> RGBA fitted in side x side.
  if (image.height <= 0 || image.width <= 0 ||
      image.pixels.size() != static_cast<size_t>(image.height) * image.width)
    throw InputError("", "the record's image is empty or its size disagrees with its pixels");
  const Colormap& cmap = Colormap::get(opt.cmap);
  Raster r;
  double aspect = static_cast<double>(image.width) / image.height;
  r.width = aspect >= 1 ? side : std::max(1, static_cast<int>(std::lround(side * aspect)));
  r.height = aspect >= 1 ? std::max(1, static_cast<int>(std::lround(side / aspect))) : side;
  r.rgba.resize(static_cast<size_t>(r.width) * r.height * 4);
  const bool has_map = map.size() > 0;
  Mat unit;
  if (has_map) unit = normalize(map, opt.scale, range);
  const double a = std::clamp(opt.alpha, 0.0, 1.0);
  for (int y = 0; y < r.height; ++y)
    for (int x = 0; x < r.width; ++x) {
      double u = (x + 0.5) / r.width, v = (y + 0.5) / r.height;
      double g = std::clamp(bilinear(image.pixels.data(), image.height, image.width, u, v), 0.0, 1.0);
      double rgb[3] = {g, g, g};
      if (has_map) {
        double t = bilinear(unit.data(), static_cast<int>(unit.rows()), static_cast<int>(unit.cols()), u, v);
        Color c = cmap.at(t);  // NaN anywhere nearby -> magenta
        rgb[0] = (1 - a) * g + a * c.r, rgb[1] = (1 - a) * g + a * c.g, rgb[2] = (1 - a) * g + a * c.b;
      }
      std::uint8_t* o = &r.rgba[(static_cast<size_t>(y) * r.width + x) * 4];
      for (int i = 0; i < 3; ++i) o[i] = static_cast<std::uint8_t>(std::lround(std::clamp(rgb[i], 0.0, 1.0) * 255));
      o[3] = 255;
    }
  return r;
}

DrawList layout_overlay(const std::vector<OverlayPanel>& panels, const OverlayOptions& opt) {
  if (panels.empty()) throw UsageError("no images to draw");
  const int n = static_cast<int>(panels.size());
  int cols = opt.columns > 0 ? opt.columns : n <= 10 ? n : static_cast<int>(std::ceil(std::sqrt(n * 1.6)));
  cols = std::min(cols, n);
  const int rows = (n + cols - 1) / cols;
  const double side = opt.panel, gap = std::max(6.0, side * 0.08), margin = 12;
  const Colormap& cmap = Colormap::get(opt.cmap);

  // One range over all maps when shared, otherwise each map gets its own.
  std::vector<const Mat*> maps;
  int non_finite = 0;
  for (const auto& p : panels)
    if (p.map.size() > 0) maps.push_back(&p.map), non_finite += count_non_finite(p.map);
  ValueRange shared = maps.empty() ? ValueRange{} : value_range(maps, opt.scale);

  TextStyle cs;
  cs.size = std::clamp(side / 10, 7.0, 11.0);
  cs.max_width = side + gap * 0.8;
  double cap_h = 0;
  for (const auto& p : panels)
    if (!p.caption.empty()) cap_h = std::max(cap_h, measure_text(p.caption, cs).height + 3);

  DrawList out;
  out.width = std::ceil(2 * margin + cols * side + (cols - 1) * gap);
  double y = margin;
  if (!opt.title.empty()) y += add_title(out, opt.title, out.width, margin, 13) + 8;
  int px = std::max(8, static_cast<int>(std::lround(side * 2)));  // pixels per panel (crisp at scale 2)
  for (int i = 0; i < n; ++i) {
    const auto& p = panels[i];
    double x0 = margin + (i % cols) * (side + gap), y0 = y + (i / cols) * (side + cap_h + gap);
    ValueRange range = opt.shared_scale || p.map.size() == 0 ? shared : value_range(p.map, opt.scale);
    Raster r = blend_overlay(p.image, p.map, range, opt, px);
    Image im;
    im.w = side * r.width / px, im.h = side * r.height / px;
    im.x = x0 + (side - im.w) / 2, im.y = y0 + (side - im.h) / 2;
    im.width = r.width, im.height = r.height, im.rgba = std::move(r.rgba), im.smooth = true;
    out.add(std::move(im));
    out.add(Rect{x0, y0, side, side, kTransparent, Color{0.55, 0.55, 0.55, 1}, 0.5});
    if (!p.caption.empty())
      out.add(Text{{x0 + side / 2, y0 + side + 2}, p.caption, cs, p.caption_color, HAlign::Center, VAlign::Top});
  }
  double bottom = y + rows * (side + cap_h) + (rows - 1) * gap;
  if (opt.colorbar && !maps.empty()) {
    // Horizontal layout has no room for a vertical bar's labels under narrow grids: put a vertical
    // colorbar at the right instead.
    double cb_h = std::max(100.0, std::min(bottom - y, 240.0));
    std::string label = opt.shared_scale ? "attention" : "attention (per image)";
    double used = add_colorbar(out, out.width - margin + 10, y, 10, cb_h, cmap, shared, label, non_finite);
    out.width += 10 + used + 4;
    bottom = std::max(bottom, y + cb_h + (non_finite > 0 ? 24 : 0));
  } else if (non_finite > 0) {
    TextStyle ns;
    ns.size = 9;
    out.add(Text{{margin, bottom + 4}, fmt::format("{} NaN/Inf map values (magenta)", non_finite), ns,
                 Color{0.6, 0, 0.6, 1}, HAlign::Left, VAlign::Top});
    bottom += 16;
  }
  out.height = std::ceil(bottom + margin);
  return out;
}

void render_overlay(const std::vector<OverlayPanel>& panels, const OverlayOptions& opt, const std::filesystem::path& out,
                    const PaintOptions& paint) {
  format_from_path(out);
  paint_to_file(layout_overlay(panels, opt), out, paint);
}

std::vector<OverlayPanel> overlay_panels(const std::vector<AttentionRecord>& records, const OverlaySelection& sel,
                                         const OverlayMapFn& fn) {
  std::vector<OverlayPanel> out;
  out.reserve(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    const auto& rec = records[i];
    if (!rec.image) throw UsageError(fmt::format("sample {} has no image to overlay attention on", i));
    OverlayPanel p;
    p.image = *rec.image;
    p.map = fn ? fn(rec) : patch_map(rec, sel);
    auto label = rec.metadata.find("label"), pred = rec.metadata.find("prediction");
    bool has_label = label != rec.metadata.end(), has_pred = pred != rec.metadata.end();
    if (has_label && has_pred) {
      p.caption = "true " + label->second + " · pred " + pred->second;
      if (label->second != pred->second) p.caption_color = Color::rgb8(200, 20, 20);
    } else if (has_label) {
      p.caption = "label " + label->second;
    } else if (has_pred) {
      p.caption = "pred " + pred->second;
    } else if (records.size() > 1) {
      p.caption = fmt::format("sample {}", i);
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace attnviz::render
