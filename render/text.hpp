// Internal: the Pango layout set-up shared by text measuring and the painter, so both agree.
#pragma once
#include <attnviz/render/draw.hpp>

#include <pango/pangocairo.h>

namespace attnviz::render::detail {

// Configures `layout` for `text` in `style` (font, markup, ellipsis/wrap). Throws InputError if the
// markup does not parse.
void setup_layout(PangoLayout* layout, const std::string& text, const TextStyle& style);

// Font options that make text metrics independent of the output scale (no hinting of metrics),
// so a layout measured once fits the same at any PNG scale, in SVG and in PDF.
void set_scale_independent_fonts(PangoContext* context);

}  // namespace attnviz::render::detail
