// Text measuring with Pango (thread-local measuring context), font fitting, markup escaping.
#include "text.hpp"

#include <attnviz/error.hpp>
#include <attnviz/io/printable.hpp>
#include <attnviz/render/escape.hpp>

#include <cairo.h>

#include <algorithm>
#include <cmath>
#include <memory>

namespace attnviz::render {

namespace detail {

void set_scale_independent_fonts(PangoContext* context) {
  cairo_font_options_t* fo = cairo_font_options_create();
  cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
  cairo_font_options_set_hint_style(fo, CAIRO_HINT_STYLE_NONE);
  cairo_font_options_set_antialias(fo, CAIRO_ANTIALIAS_GRAY);
  pango_cairo_context_set_font_options(context, fo);
  cairo_font_options_destroy(fo);
  // Glyph positions exactly as the font says, not rounded to whole units of the layout's space: the
  // painter lays text out in points at an identity matrix (see Painter::draw(Text)), and rounding
  // there would snap glyphs to a 1 pt grid.
  pango_context_set_round_glyph_positions(context, FALSE);
}

}  // namespace detail

std::string figure_text(const std::string& text, bool markup, bool one_line) {
  const size_t max_bytes = markup ? text.size() : one_line ? 256 : 4096;
  std::string cut = text;
  if (cut.size() > max_bytes) {
    size_t n = max_bytes;
    while (n > 0 && (static_cast<unsigned char>(cut[n]) & 0xC0) == 0x80) --n;  // UTF-8 boundary
    cut.resize(n);
    cut += "\u2026";
  }
  // Newlines and tabs lay out as intended; everything else a shaper would act on is shown escaped.
  std::string out;
  size_t start = 0;
  while (true) {
    const size_t end = cut.find_first_of("\n\t", start);
    out += printable_for_terminal(std::string_view(cut).substr(start, end == std::string::npos ? end : end - start));
    if (end == std::string::npos) break;
    out += cut[end];
    start = end + 1;
  }
  return out;
}

namespace detail {

double setup_layout(PangoLayout* layout, const std::string& raw, const TextStyle& style) {
  const std::string text = figure_text(raw, style.markup, style.max_width > 0);
  // A size that is not a positive number draws nothing visible rather than dividing by zero.
  const double f = std::isfinite(style.size) && style.size > 0 ? style.size / kLayoutSize : 1e-3;
  PangoFontDescription* fd = pango_font_description_new();
  pango_font_description_set_family(fd, style.family.c_str());
  pango_font_description_set_absolute_size(fd, kLayoutSize * PANGO_SCALE);  // points = user units
  pango_font_description_set_weight(fd, style.bold ? PANGO_WEIGHT_BOLD : PANGO_WEIGHT_NORMAL);
  pango_font_description_set_style(fd, style.italic ? PANGO_STYLE_ITALIC : PANGO_STYLE_NORMAL);
  pango_layout_set_font_description(layout, fd);
  pango_font_description_free(fd);
  if (style.markup) {
    GError* err = nullptr;
    if (!pango_parse_markup(text.c_str(), -1, 0, nullptr, nullptr, nullptr, &err)) {
      std::string msg = err ? err->message : "bad markup";
      if (err) g_error_free(err);
      throw InputError("", "text markup does not parse: " + msg);
    }
    pango_layout_set_markup(layout, text.c_str(), -1);
  } else {
    pango_layout_set_attributes(layout, nullptr);
    pango_layout_set_text(layout, text.c_str(), -1);
  }
  if (style.max_width > 0) {
    pango_layout_set_width(layout, static_cast<int>(style.max_width / f * PANGO_SCALE));
    pango_layout_set_ellipsize(layout, PANGO_ELLIPSIZE_END);
    pango_layout_set_wrap(layout, PANGO_WRAP_WORD);
    pango_layout_set_height(layout, -1);  // one line
  } else if (style.wrap_width > 0) {
    pango_layout_set_ellipsize(layout, PANGO_ELLIPSIZE_NONE);
    pango_layout_set_width(layout, static_cast<int>(style.wrap_width / f * PANGO_SCALE));
    pango_layout_set_wrap(layout, PANGO_WRAP_WORD_CHAR);
  } else {
    pango_layout_set_ellipsize(layout, PANGO_ELLIPSIZE_NONE);
    pango_layout_set_width(layout, -1);
  }
  return f;
}

}  // namespace detail

namespace {
// A 1x1 image surface + Pango layout per thread, reused for every measurement.
struct Measurer {
  cairo_surface_t* surface = nullptr;
  cairo_t* cr = nullptr;
  PangoLayout* layout = nullptr;
  Measurer() {
    surface = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 1, 1);
    cr = cairo_create(surface);
    layout = pango_cairo_create_layout(cr);
    detail::set_scale_independent_fonts(pango_layout_get_context(layout));
    pango_layout_context_changed(layout);
  }
  ~Measurer() {
    g_object_unref(layout);
    cairo_destroy(cr);
    cairo_surface_destroy(surface);
  }
};
Measurer& measurer() {
  thread_local Measurer m;
  return m;
}
}  // namespace

TextExtent measure_text(const std::string& text, const TextStyle& style) {
  Measurer& m = measurer();
  const double f = detail::setup_layout(m.layout, text, style);
  PangoRectangle logical;
  pango_layout_get_extents(m.layout, nullptr, &logical);
  TextExtent e;
  e.width = logical.width * f / PANGO_SCALE;
  e.height = logical.height * f / PANGO_SCALE;
  e.baseline = pango_layout_get_baseline(m.layout) * f / PANGO_SCALE;
  return e;
}

double fit_font_size(const std::vector<std::string>& texts, const TextStyle& style, double max_width,
                     double max_height, double min_size, double max_size) {
  // Metrics are unhinted, so extents scale linearly with the size: measure once at a reference
  // size and solve for the largest size that fits, then snap down to 0.5 pt.
  TextStyle ref = style;
  ref.size = 10;
  ref.max_width = 0;
  ref.wrap_width = 0;
  double widest = 0, tallest = 0;
  for (const auto& t : texts) {
    TextExtent e = measure_text(t, ref);
    widest = std::max(widest, e.width);
    tallest = std::max(tallest, e.height);
  }
  double size = max_size;
  if (widest > 0) size = std::min(size, 10 * max_width / widest);
  if (tallest > 0) size = std::min(size, 10 * max_height / tallest);
  size = std::floor(size * 2) / 2;
  return std::clamp(size, min_size, max_size);
}

std::string escape_markup(const std::string& text) { return html_escape(text); }

bool has_all_glyphs(const std::string& text, const TextStyle& style) {
  Measurer& m = measurer();
  TextStyle s = style;
  s.max_width = 0;
  s.wrap_width = 0;
  detail::setup_layout(m.layout, text, s);
  return pango_layout_get_unknown_glyphs_count(m.layout) == 0;
}

}  // namespace attnviz::render
