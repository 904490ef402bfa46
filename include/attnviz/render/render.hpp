// The renderer's public API in one include: colormaps, draw list + painter, plot kinds.
#pragma once
#include <attnviz/render/colormap.hpp>
#include <attnviz/render/draw.hpp>
#include <attnviz/render/plots.hpp>
