// Internal: the Pango layout set-up shared by text measuring and the painter, so both agree.
#pragma once
#include <attnviz/render/draw.hpp>

#include <pango/pangocairo.h>

namespace attnviz::render::detail {

// Every layout is made at this one font size and scaled to the style's size when measured or
// drawn (metrics are unhinted, so extents scale linearly): Pango makes a font set per size, and
// each new one is a fontconfig sort in a new thread (Pango 1.50), ~0.8 ms of CPU apiece.
inline constexpr double kLayoutSize = 10;

// Which font configuration lays a string out. Builtin: a fontconfig configuration made in code
// with only the DejaVu Sans faces (no XML read, no font cache), used when Debian's own
// configuration would draw every character of the string with those faces anyway; System: the
// configuration fontconfig reads from /etc/fonts (fallback to every installed font), as always.
enum class FontPath { Builtin = 0, System = 1 };

// The path for `text` (as laid out, i.e. after figure_text) in `style`; see text.cpp for the rules.
FontPath font_path(const std::string& text, const TextStyle& style);

// Whether the built-in configuration is in use in this process (decided once, on first use).
bool builtin_font_config_active();

// The two Pango layouts of one cairo context, one per font path, made on first use. With
// `identity_matrix` the context's transformation is not copied into the layouts (the painter lays
// text out in points and draws it through cairo's transformation).
class Layouts {
 public:
  Layouts(cairo_t* cr, bool identity_matrix) : cr_(cr), identity_(identity_matrix) {}
  ~Layouts();
  Layouts(const Layouts&) = delete;
  Layouts& operator=(const Layouts&) = delete;
  PangoLayout* get(FontPath path);

 private:
  cairo_t* cr_;
  bool identity_;
  PangoLayout* layouts_[2] = {nullptr, nullptr};
};

struct PreparedLayout {
  PangoLayout* layout;
  double f;  // style.size / kLayoutSize
};

// Configures the layout of `layouts` that `text` in `style` is to be laid out with (font, markup,
// ellipsis/wrap) at kLayoutSize and returns it with the factor style.size / kLayoutSize that its
// extents (and the drawing) are to be scaled by. Throws InputError if the markup does not parse.
PreparedLayout setup_layout(Layouts& layouts, const std::string& text, const TextStyle& style);

// Font options that make text metrics independent of the output scale (no hinting of metrics),
// so a layout measured once fits the same at any PNG scale, in SVG and in PDF.
void set_scale_independent_fonts(PangoContext* context);

}  // namespace attnviz::render::detail
