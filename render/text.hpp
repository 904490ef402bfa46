// Internal: the Pango layout set-up shared by text measuring and the painter, so both agree.
#pragma once
#include <attnviz/render/draw.hpp>

#include <pango/pangocairo.h>

namespace attnviz::render::detail {

// Every layout is made at this one font size and scaled to the style's size when measured or
// drawn (metrics are unhinted, so extents scale linearly): Pango makes a font set per size, and
// each new one is a fontconfig sort in a new thread (Pango 1.50), ~0.8 ms of CPU apiece.
inline constexpr double kLayoutSize = 10;

// Configures `layout` for `text` in `style` (font, markup, ellipsis/wrap) at kLayoutSize and returns
// the factor style.size / kLayoutSize that the layout's extents (and the drawing) are to be scaled
// by. Throws InputError if the markup does not parse.
double setup_layout(PangoLayout* layout, const std::string& text, const TextStyle& style);

// Font options that make text metrics independent of the output scale (no hinting of metrics),
// so a layout measured once fits the same at any PNG scale, in SVG and in PDF.
void set_scale_independent_fonts(PangoContext* context);

}  // namespace attnviz::render::detail
