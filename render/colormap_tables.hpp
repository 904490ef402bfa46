// The 256-entry colormap tables (defined in the generated colormap_tables.cpp).
#pragma once
#include <attnviz/render/colormap.hpp>

namespace attnviz::render::tables {
extern const Colormap::Table viridis, magma, inferno, plasma, cividis, gray, coolwarm;
}
