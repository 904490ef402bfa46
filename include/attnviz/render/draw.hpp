// The backend-neutral draw list that every plot's layout produces, text measuring (Pango), and
// the one Cairo painter that draws a list to PNG, SVG or PDF.
#pragma once
#include <attnviz/render/colormap.hpp>

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <variant>
#include <vector>

namespace attnviz::render {

// Coordinates are in points (1/72 inch), origin top-left, y down. A PNG is drawn at
// PaintOptions::scale pixels per point.

struct Point {
  double x = 0, y = 0;
};

// A filled and/or stroked axis-aligned rectangle (a heatmap cell, a panel frame).
struct Rect {
  double x = 0, y = 0, w = 0, h = 0;
  Color fill = kTransparent;
  Color stroke = kTransparent;
  double stroke_width = 0;   // 0 = no stroke
  bool hatched = false;      // draw diagonal hatching in `stroke` colour over the fill (NaN cells)
};

// A straight segment.
struct Line {
  Point a, b;
  Color color = kBlack;
  double width = 1;
  bool round_caps = false;
  double dash = 0;           // dash length (0 = solid)
};

// A closed or open polyline, optionally filled (markers: diamonds, triangles, crosses).
struct Polygon {
  std::vector<Point> points;
  bool closed = true;
  Color fill = kTransparent;
  Color stroke = kTransparent;
  double stroke_width = 0;
};

// A circle (alignment markers, dots).
struct Circle {
  Point centre;
  double radius = 1;
  Color fill = kTransparent;
  Color stroke = kTransparent;
  double stroke_width = 0;
};

enum class HAlign { Left, Center, Right };
enum class VAlign { Top, Middle, Baseline, Bottom };

// How a piece of text looks. Font fallback (CJK, symbols) is done by Pango/fontconfig.
struct TextStyle {
  double size = 10;              // points
  std::string family = "Sans";   // Pango font family list, e.g. "Sans", "Monospace"
  bool bold = false;
  bool italic = false;
  bool markup = false;           // text is Pango markup (<b>, <span background=...>); else plain UTF-8
  double max_width = 0;          // > 0: shorten with an ellipsis ("…") to fit this width (points)
  double wrap_width = 0;         // > 0: wrap words at this width (ignored when max_width > 0)
};

// A piece of text anchored at `at`: the anchor is the point of the (unrotated) text box given by
// halign/valign, and the text is rotated by `angle` degrees counter-clockwise around the anchor.
struct Text {
  Point at;
  std::string text;
  TextStyle style;
  Color color = kBlack;
  HAlign halign = HAlign::Left;
  VAlign valign = VAlign::Baseline;
  double angle = 0;
};

// An RGBA raster placed in the rectangle (x, y, w, h), scaled (nearest or bilinear).
struct Image {
  double x = 0, y = 0, w = 0, h = 0;
  int width = 0, height = 0;            // pixels
  std::vector<std::uint8_t> rgba;       // [height * width * 4], straight (not premultiplied) alpha
  bool smooth = false;                  // false: nearest neighbour (crisp cells); true: bilinear
};

// Clip subsequent ops to a rectangle until the matching PopClip.
struct PushClip {
  double x = 0, y = 0, w = 0, h = 0;
};
struct PopClip {};

using DrawOp = std::variant<Rect, Line, Polygon, Circle, Text, Image, PushClip, PopClip>;

// A figure: its size in points, a background, and the ops in painting order.
struct DrawList {
  double width = 0, height = 0;
  Color background = kWhite;
  std::vector<DrawOp> ops;

  template <class Op>
  void add(Op op) { ops.emplace_back(std::move(op)); }
  // Appends another list's ops shifted by (dx, dy) (panels of a multi-panel figure). The other
  // list's background is painted as a rectangle first unless it is transparent.
  void append(const DrawList& other, double dx, double dy);
};

// ---- text measuring ----

struct TextExtent {
  double width = 0;     // logical width (points), before rotation
  double height = 0;    // logical height (line spacing included)
  double baseline = 0;  // distance from the top of the box to the baseline of the first line
};

// Size of `text` in `style` as the painter will draw it (same Pango font map). Thread-safe.
TextExtent measure_text(const std::string& text, const TextStyle& style);

// The text a figure shows for `text`: control characters and bidi overrides made visible (a
// right-to-left override cannot make "evil" read "live"; newlines and tabs are kept), and, unless
// `markup`, cut to a bounded number of bytes at a UTF-8 boundary with an ellipsis, so a 12 MB token
// costs no more layout time than a long word. One-line (ellipsized) labels keep 256 bytes, other
// text 4096.
std::string figure_text(const std::string& text, bool markup, bool one_line);

// The largest size in [min_size, max_size] (steps of 0.5 pt) at which every string fits in
// max_width x max_height; strings that still do not fit at min_size are shortened with an
// ellipsis by the painter when style.max_width is set.
double fit_font_size(const std::vector<std::string>& texts, const TextStyle& style, double max_width,
                     double max_height, double min_size, double max_size);

// Escapes plain text for use inside Pango markup: html_escape (<attnviz/render/escape.hpp>).
std::string escape_markup(const std::string& text);

// True if every character of `text` is covered by a font Pango picks for `style` (no missing-glyph
// boxes). Used by tests and to warn about tokens that cannot be shown.
bool has_all_glyphs(const std::string& text, const TextStyle& style);

// ---- painting ----

enum class Format { Png, Svg, Pdf };
// From the extension of path (case-insensitive .png/.svg/.pdf); throws UsageError otherwise.
Format format_from_path(const std::filesystem::path& path);
std::string to_string(Format f);

struct PaintOptions {
  double scale = 2;   // PNG pixels per point (2 = crisp on high-DPI screens); ignored by SVG/PDF
  double dpi = 0;     // > 0: overrides scale as dpi / 72 (PNG only)
  bool small_png = false;  // compress PNGs with zlib (about 3x smaller files, 1.4x slower to write)
                           // instead of the fast run-length coder
  int threads = 0;    // PNG: images of more than 4 MiB of pixels are compressed in bands on up to
                      // this many threads (0 = every hardware thread; 1 = the calling thread only)
  double pixel_scale() const { return dpi > 0 ? dpi / 72.0 : scale; }
};

// Encodes the list in `format` and returns the file bytes. Throws InputError on a Cairo failure.
std::string paint_to_bytes(const DrawList& list, Format format, const PaintOptions& opt = {});

// Paints to `path` (format from the extension), atomically: an interrupted or failed render
// leaves no file under the target name.
void paint_to_file(const DrawList& list, const std::filesystem::path& path, const PaintOptions& opt = {});

// Rasterizes the list to 8-bit RGBA pixels (straight alpha), row-major [H, W, 4], for tests and
// for embedding one figure inside another as an Image.
struct Raster {
  int width = 0, height = 0;
  std::vector<std::uint8_t> rgba;
  std::array<std::uint8_t, 4> pixel(int x, int y) const {
    const auto* p = &rgba[(static_cast<size_t>(y) * width + x) * 4];
    return {p[0], p[1], p[2], p[3]};
  }
};
Raster paint_to_raster(const DrawList& list, const PaintOptions& opt = {});

// Plain pixel images with no text (raw matrix at one pixel per cell, overlay thumbnails), written
// through stb_image_write as PNG, atomically. rgba: [height * width * 4].
void write_png_pixels(const std::filesystem::path& path, int width, int height,
                      const std::vector<std::uint8_t>& rgba);

}  // namespace attnviz::render
