// Reports the cairo and pango versions linked into the renderer.
#include <attnviz/render/render_info.hpp>

#include <cairo.h>
#include <pango/pango.h>

namespace attnviz {
std::string render_backend_versions() {
  return std::string("cairo ") + cairo_version_string() + ", pango " + pango_version_string();
}
}  // namespace attnviz
