// The one Cairo painter: draws a DrawList onto a PNG, SVG or PDF surface (unigd model).
#include "png_encode.hpp"
#include "text.hpp"

#include <attnviz/io/atomic_file.hpp>
#include <attnviz/error.hpp>
#include <attnviz/render/draw.hpp>

#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <cairo.h>
#include <sys/mman.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

namespace attnviz::render {

void DrawList::append(const DrawList& other, double dx, double dy) {
  if (other.background.a > 0) add(Rect{dx, dy, other.width, other.height, other.background});
  ops.reserve(ops.size() + other.ops.size());
  for (DrawOp op : other.ops) {
    std::visit(
        [&](auto& o) {
          using T = std::decay_t<decltype(o)>;
          if constexpr (std::is_same_v<T, Rect> || std::is_same_v<T, Image> || std::is_same_v<T, PushClip>) {
            o.x += dx, o.y += dy;
          } else if constexpr (std::is_same_v<T, Line>) {
            o.a.x += dx, o.a.y += dy, o.b.x += dx, o.b.y += dy;
          } else if constexpr (std::is_same_v<T, Polygon>) {
            for (auto& p : o.points) p.x += dx, p.y += dy;
          } else if constexpr (std::is_same_v<T, Circle>) {
            o.centre.x += dx, o.centre.y += dy;
          } else if constexpr (std::is_same_v<T, Text>) {
            o.at.x += dx, o.at.y += dy;
          }
        },
        op);
    ops.push_back(std::move(op));
  }
}

Format format_from_path(const std::filesystem::path& path) {
  if (path == "-") return Format::Png;  // -o - writes a PNG to standard output
  check_output_path(path);  // -o /dev/null, a FIFO, a folder: refused (exit 2) before any work
  std::string ext = path.extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext == ".png") return Format::Png;
  if (ext == ".svg") return Format::Svg;
  if (ext == ".pdf") return Format::Pdf;
  throw UsageError("cannot tell the output format of '" + path.string() +
                   "': use a .png, .svg or .pdf extension");
}

std::string to_string(Format f) {
  switch (f) {
    case Format::Png: return "png";
    case Format::Svg: return "svg";
    case Format::Pdf: return "pdf";
  }
  return "?";
}

namespace {

struct SurfaceDeleter {
  void operator()(cairo_surface_t* s) const { cairo_surface_destroy(s); }
};
struct ContextDeleter {
  void operator()(cairo_t* c) const { cairo_destroy(c); }
};
using SurfacePtr = std::unique_ptr<cairo_surface_t, SurfaceDeleter>;
using ContextPtr = std::unique_ptr<cairo_t, ContextDeleter>;

void check(cairo_status_t st, const char* what) {
  if (st != CAIRO_STATUS_SUCCESS)
    throw InputError("", std::string("cairo failed while ") + what + ": " + cairo_status_to_string(st));
}

void set_color(cairo_t* cr, Color c) { cairo_set_source_rgba(cr, c.r, c.g, c.b, c.a); }

cairo_status_t append_bytes(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

// Draws the ops of a list; `pixel` is device pixels per point (for PNG cell snapping).
class Painter {
 public:
  Painter(cairo_t* cr, bool raster) : cr_(cr), raster_(raster), layouts_(cr, true) {}

  void paint(const DrawList& list) {
    set_color(cr_, list.background);
    cairo_set_operator(cr_, CAIRO_OPERATOR_SOURCE);
    cairo_paint(cr_);
    cairo_set_operator(cr_, CAIRO_OPERATOR_OVER);
    for (const auto& op : list.ops) std::visit([this](const auto& o) { draw(o); }, op);
    check(cairo_status(cr_), "drawing");
  }

 private:
  void fill_stroke(Color fill, Color stroke, double width) {
    bool do_fill = fill.a > 0, do_stroke = stroke.a > 0 && width > 0;
    if (do_fill) {
      set_color(cr_, fill);
      if (do_stroke) cairo_fill_preserve(cr_);
      else cairo_fill(cr_);
    }
    if (do_stroke) {
      set_color(cr_, stroke);
      cairo_set_line_width(cr_, width);
      cairo_stroke(cr_);
    }
    cairo_new_path(cr_);
  }

  void draw(const Rect& r) {
    bool plain = r.stroke_width <= 0 && !r.hatched;
    // Cells that touch must not show seams of background between them in a PNG: fill without
    // antialiasing (cell edges are whole points, so whole pixels at integer scales).
    if (plain && raster_) cairo_set_antialias(cr_, CAIRO_ANTIALIAS_NONE);
    // SVG/PDF viewers antialias each shape, so touching cells show hairline seams; an overlap of
    // 0.3 pt to the right and bottom (covered by the next cell, drawn later) closes them.
    double grow = plain && !raster_ && r.fill.a >= 1 ? 0.3 : 0.0;
    cairo_rectangle(cr_, r.x, r.y, r.w + grow, r.h + grow);
    if (r.hatched) {
      set_color(cr_, r.fill);
      cairo_fill(cr_);
      cairo_save(cr_);
      cairo_rectangle(cr_, r.x, r.y, r.w, r.h);
      cairo_clip(cr_);
      double step = std::max(3.0, std::min(r.w, r.h) / 4);
      for (double d = -r.h; d < r.w; d += step) {
        cairo_move_to(cr_, r.x + d, r.y + r.h);
        cairo_line_to(cr_, r.x + d + r.h, r.y);
      }
      set_color(cr_, r.stroke.a > 0 ? r.stroke : kBlack);
      cairo_set_line_width(cr_, std::max(0.5, step / 5));
      cairo_stroke(cr_);
      cairo_restore(cr_);
    } else {
      fill_stroke(r.fill, r.stroke, r.stroke_width);
    }
    if (plain && raster_) cairo_set_antialias(cr_, CAIRO_ANTIALIAS_DEFAULT);
  }

  void draw(const Line& l) {
    cairo_move_to(cr_, l.a.x, l.a.y);
    cairo_line_to(cr_, l.b.x, l.b.y);
    cairo_set_line_cap(cr_, l.round_caps ? CAIRO_LINE_CAP_ROUND : CAIRO_LINE_CAP_BUTT);
    if (l.dash > 0) cairo_set_dash(cr_, &l.dash, 1, 0);
    set_color(cr_, l.color);
    cairo_set_line_width(cr_, l.width);
    cairo_stroke(cr_);
    if (l.dash > 0) cairo_set_dash(cr_, nullptr, 0, 0);
    cairo_set_line_cap(cr_, CAIRO_LINE_CAP_BUTT);
  }

  void draw(const Polygon& p) {
    if (p.points.empty()) return;
    cairo_move_to(cr_, p.points[0].x, p.points[0].y);
    for (size_t i = 1; i < p.points.size(); ++i) cairo_line_to(cr_, p.points[i].x, p.points[i].y);
    if (p.closed) cairo_close_path(cr_);
    cairo_set_line_join(cr_, CAIRO_LINE_JOIN_ROUND);
    fill_stroke(p.closed ? p.fill : kTransparent, p.stroke, p.stroke_width);
  }

  void draw(const Circle& c) {
    cairo_new_sub_path(cr_);
    cairo_arc(cr_, c.centre.x, c.centre.y, c.radius, 0, 2 * M_PI);
    fill_stroke(c.fill, c.stroke, c.stroke_width);
  }

  void draw(const Text& t) {
    if (t.text.empty()) return;
    const auto [layout, f] = detail::setup_layout(layouts_, t.text, t.style);  // f: layout units -> points
    pango_layout_set_alignment(layout, t.halign == HAlign::Center  ? PANGO_ALIGN_CENTER
                                       : t.halign == HAlign::Right ? PANGO_ALIGN_RIGHT
                                                                   : PANGO_ALIGN_LEFT);
    PangoRectangle logical;
    pango_layout_get_extents(layout, nullptr, &logical);
    double w = logical.width / double(PANGO_SCALE), h = logical.height / double(PANGO_SCALE);
    double x0 = logical.x / double(PANGO_SCALE);
    double baseline = pango_layout_get_baseline(layout) / double(PANGO_SCALE);
    double dx = t.halign == HAlign::Left ? 0 : t.halign == HAlign::Center ? w / 2 : w;
    double dy = t.valign == VAlign::Top ? 0
              : t.valign == VAlign::Middle ? h / 2
              : t.valign == VAlign::Baseline ? baseline
                                             : h;
    cairo_save(cr_);
    cairo_translate(cr_, t.at.x, t.at.y);
    if (t.angle != 0) cairo_rotate(cr_, -t.angle * M_PI / 180.0);
    cairo_scale(cr_, f, f);
    cairo_move_to(cr_, -dx - x0, -dy);
    set_color(cr_, t.color);
    // No pango_cairo_update_layout: the layout stays at the identity matrix and the one size it was
    // measured at, and cairo draws the unhinted outlines through the current transformation
    // (scale to the style's size, rotation, PNG pixels per point). Handing Pango each
    // transformation made every (size, scale) a font set of its own (see kLayoutSize).
    pango_cairo_show_layout(cr_, layout);
    cairo_restore(cr_);
  }

  void draw(const Image& im) {
    if (im.width <= 0 || im.height <= 0 || im.w <= 0 || im.h <= 0) return;
    if (im.rgba.size() != static_cast<size_t>(im.width) * im.height * 4)
      throw InputError("", "image op has " + std::to_string(im.rgba.size()) + " bytes, expected " +
                               std::to_string(size_t(im.width) * im.height * 4));
    // An opaque image (a heatmap's cell field) becomes an RGB24 surface, which pixman copies
    // instead of blending; others are premultiplied into ARGB32.
    bool opaque = true;
    for (size_t i = 3; i < im.rgba.size() && opaque; i += 4) opaque = im.rgba[i] == 255;
    SurfacePtr s(cairo_image_surface_create(opaque ? CAIRO_FORMAT_RGB24 : CAIRO_FORMAT_ARGB32, im.width, im.height));
    check(cairo_surface_status(s.get()), "creating an image");
    cairo_surface_flush(s.get());
    unsigned char* data = cairo_image_surface_get_data(s.get());
    int stride = cairo_image_surface_get_stride(s.get());
    for (int y = 0; y < im.height; ++y) {
      auto* row = reinterpret_cast<std::uint32_t*>(data + static_cast<size_t>(y) * stride);
      const std::uint8_t* p = &im.rgba[static_cast<size_t>(y) * im.width * 4];
      if (opaque) {
        for (int x = 0; x < im.width; ++x, p += 4)
          row[x] = 0xFF000000u | (std::uint32_t{p[0]} << 16) | (std::uint32_t{p[1]} << 8) | p[2];
        continue;
      }
      for (int x = 0; x < im.width; ++x, p += 4) {
        std::uint32_t a = p[3];
        auto pm = [a](std::uint32_t c) { return (c * a + 127) / 255; };  // premultiply
        row[x] = (a << 24) | (pm(p[0]) << 16) | (pm(p[1]) << 8) | pm(p[2]);
      }
    }
    cairo_surface_mark_dirty(s.get());
    cairo_save(cr_);
    cairo_rectangle(cr_, im.x, im.y, im.w, im.h);
    cairo_clip(cr_);
    cairo_translate(cr_, im.x, im.y);
    cairo_scale(cr_, im.w / im.width, im.h / im.height);
    cairo_set_source_surface(cr_, s.get(), 0, 0);
    cairo_pattern_t* pat = cairo_get_source(cr_);
    cairo_pattern_set_filter(pat, im.smooth ? CAIRO_FILTER_BILINEAR : CAIRO_FILTER_NEAREST);
    cairo_pattern_set_extend(pat, CAIRO_EXTEND_PAD);
    cairo_paint(cr_);
    cairo_restore(cr_);
  }

  void draw(const PushClip& c) {
    cairo_save(cr_);
    cairo_rectangle(cr_, c.x, c.y, c.w, c.h);
    cairo_clip(cr_);
  }
  void draw(const PopClip&) { cairo_restore(cr_); }

  cairo_t* cr_;
  bool raster_;
  detail::Layouts layouts_;
};

// The PNG surface's pixels: a per-thread buffer reused across figures (no page faults for each new
// figure; the surface is only used before the next call on its thread), never zero-filled
// (Painter::paint starts by painting the background with OPERATOR_SOURCE), and asked for in
// transparent huge pages where the kernel allows them (THP "always" or "madvise"): the first write
// to each 4 KiB page of fresh memory traps into the kernel, and the 4.9 MB of a 64x64 labelled
// heatmap took ~1,200 such faults, ~3 ms of a 30 ms process (measured on the AMD EPYC VM); in 2 MiB
// pages it takes 3. Without huge pages the kernel falls back to 4 KiB pages silently.
class PixelBuffer {
 public:
  PixelBuffer() = default;
  PixelBuffer(const PixelBuffer&) = delete;
  PixelBuffer& operator=(const PixelBuffer&) = delete;
  ~PixelBuffer() { release(); }

  unsigned char* get(std::size_t bytes) {
    if (bytes <= size_) return data_;
    release();
    constexpr std::size_t kHuge = std::size_t{2} << 20;
    const std::size_t size = (bytes + kHuge - 1) / kHuge * kHuge;
    // Map one huge page more and unmap the ends, so the buffer starts on a 2 MiB boundary.
    void* p = mmap(nullptr, size + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    auto* base = static_cast<unsigned char*>(p);
    const std::uintptr_t addr = reinterpret_cast<std::uintptr_t>(base);
    auto* aligned = base + ((kHuge - addr % kHuge) % kHuge);
    if (aligned > base) munmap(base, static_cast<std::size_t>(aligned - base));
    if (aligned + size < base + size + kHuge) munmap(aligned + size, static_cast<std::size_t>(base + size + kHuge - (aligned + size)));
    madvise(aligned, size, MADV_HUGEPAGE);  // advice only: EINVAL without THP support is fine
    data_ = aligned;
    size_ = size;
    return data_;
  }

 private:
  void release() {
    if (data_) munmap(data_, size_);
    data_ = nullptr;
    size_ = 0;
  }
  unsigned char* data_ = nullptr;
  std::size_t size_ = 0;
};

SurfacePtr paint_image(const DrawList& list, const PaintOptions& opt) {
  double scale = opt.pixel_scale();
  if (!(scale > 0) || scale > 64) throw UsageError("PNG scale must be in (0, 64], got " + std::to_string(scale));
  int w = std::max(1, static_cast<int>(std::ceil(list.width * scale - 1e-6)));
  int h = std::max(1, static_cast<int>(std::ceil(list.height * scale - 1e-6)));
  // Cairo's image surfaces stop at 32767 pixels a side: say so before allocating anything.
  if (w > 32767 || h > 32767)
    throw UsageError("the PNG would be " + std::to_string(w) + "x" + std::to_string(h) +
                     " pixels, over cairo's limit of 32767 pixels a side; lower --cell/--scale/--dpi or use .svg/.pdf");
  if (static_cast<double>(w) * h > 400e6)
    throw UsageError("the PNG would be " + std::to_string(w) + "x" + std::to_string(h) +
                     " pixels; lower --scale/--dpi or use .svg/.pdf");
  thread_local PixelBuffer pixels;
  int stride = cairo_format_stride_for_width(CAIRO_FORMAT_ARGB32, w);
  SurfacePtr s(cairo_image_surface_create_for_data(pixels.get(static_cast<size_t>(stride) * h), CAIRO_FORMAT_ARGB32,
                                                   w, h, stride));
  check(cairo_surface_status(s.get()), "creating the PNG surface");
  ContextPtr cr(cairo_create(s.get()));
  cairo_scale(cr.get(), scale, scale);
  Painter(cr.get(), true).paint(list);
  cairo_surface_flush(s.get());
  return s;
}

}  // namespace

std::string paint_to_bytes(const DrawList& list, Format format, const PaintOptions& opt) {
  std::string bytes;
  if (format == Format::Png) {
    SurfacePtr s = paint_image(list, opt);
    return detail::encode_png_argb32(cairo_image_surface_get_data(s.get()), cairo_image_surface_get_width(s.get()),
                                     cairo_image_surface_get_height(s.get()), cairo_image_surface_get_stride(s.get()),
                                     opt.pixel_scale() * 72.0, opt.small_png, opt.threads);
  }
  double w = std::max(1.0, list.width), h = std::max(1.0, list.height);
  SurfacePtr s(format == Format::Svg ? cairo_svg_surface_create_for_stream(append_bytes, &bytes, w, h)
                                     : cairo_pdf_surface_create_for_stream(append_bytes, &bytes, w, h));
  check(cairo_surface_status(s.get()), "creating the vector surface");
  if (format == Format::Svg) cairo_svg_surface_restrict_to_version(s.get(), CAIRO_SVG_VERSION_1_1);
  {
    ContextPtr cr(cairo_create(s.get()));
    Painter(cr.get(), false).paint(list);
    cairo_show_page(cr.get());
    check(cairo_status(cr.get()), "finishing the page");
  }
  cairo_surface_finish(s.get());
  check(cairo_surface_status(s.get()), "finishing the file");
  return bytes;
}

void paint_to_file(const DrawList& list, const std::filesystem::path& path, const PaintOptions& opt) {
  Format f = format_from_path(path);
  std::string bytes = paint_to_bytes(list, f, opt);
  write_file_atomically(path, bytes);
}

Raster paint_to_raster(const DrawList& list, const PaintOptions& opt) {
  SurfacePtr s = paint_image(list, opt);
  Raster r;
  r.width = cairo_image_surface_get_width(s.get());
  r.height = cairo_image_surface_get_height(s.get());
  int stride = cairo_image_surface_get_stride(s.get());
  const unsigned char* data = cairo_image_surface_get_data(s.get());
  r.rgba.resize(static_cast<size_t>(r.width) * r.height * 4);
  for (int y = 0; y < r.height; ++y) {
    auto* row = reinterpret_cast<const std::uint32_t*>(data + static_cast<size_t>(y) * stride);
    for (int x = 0; x < r.width; ++x) {
      std::uint32_t px = row[x];
      std::uint32_t a = px >> 24;
      auto un = [a](std::uint32_t c) { return a ? static_cast<std::uint8_t>(std::min<std::uint32_t>(255, (c * 255 + a / 2) / a)) : 0; };
      std::uint8_t* o = &r.rgba[(static_cast<size_t>(y) * r.width + x) * 4];
      o[0] = un((px >> 16) & 255), o[1] = un((px >> 8) & 255), o[2] = un(px & 255), o[3] = static_cast<std::uint8_t>(a);
    }
  }
  return r;
}

}  // namespace attnviz::render
