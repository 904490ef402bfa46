// Versions of the drawing libraries the renderer was built with (shown by `attnviz --version`).
#pragma once
#include <string>

namespace attnviz {
std::string render_backend_versions();
}
