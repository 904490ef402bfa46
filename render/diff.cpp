// Difference view: A - B of two attention matrices as a heatmap on a diverging map, symmetric scale.
#include <attnviz/error.hpp>
#include <attnviz/render/plots.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace attnviz::render {

std::vector<CellChange> largest_changes(const Mat& a, const Mat& b, int n) {
  // a, b: [Q, K]
  std::vector<CellChange> all;
  for (int q = 0; q < a.rows(); ++q)
    for (int k = 0; k < a.cols(); ++k)
      if (std::isfinite(a(q, k) - b(q, k))) all.push_back({q, k, a(q, k), b(q, k)});
  n = std::clamp(n, 0, static_cast<int>(all.size()));
  auto bigger = [](const CellChange& x, const CellChange& y) {
    const double dx = std::abs(x.a - x.b), dy = std::abs(y.a - y.b);
    return dx != dy ? dx > dy : (x.query != y.query ? x.query < y.query : x.key < y.key);
  };
  std::partial_sort(all.begin(), all.begin() + n, all.end(), bigger);
  all.resize(n);
  return all;
}

LabelledMatrix difference(const LabelledMatrix& a, const LabelledMatrix& b) {
  if (a.values.rows() != b.values.rows() || a.values.cols() != b.values.cols())
    throw UsageError(fmt::format("cannot subtract: A ({}) is [{}, {}] but B ({}) is [{}, {}]", a.title, a.values.rows(),
                                 a.values.cols(), b.title, b.values.rows(), b.values.cols()));
  LabelledMatrix d = a;
  d.values = a.values - b.values;
  d.title = a.title + "  −  " + b.title;
  return d;
}

DrawList layout_diff(const LabelledMatrix& a, const LabelledMatrix& b, HeatmapOptions opt) {
  LabelledMatrix d = difference(a, b);
  if (!Colormap::get(opt.cmap).diverging()) opt.cmap = "coolwarm";
  double m = 0;
  for (int i = 0; i < d.values.size(); ++i)
    if (std::isfinite(d.values.data()[i])) m = std::max(m, std::abs(static_cast<double>(d.values.data()[i])));
  if (opt.scale.vmax) m = std::abs(*opt.scale.vmax);
  if (m == 0) m = 1e-6;  // identical matrices: an all-white figure with a tiny symmetric range
  opt.scale.norm = Normalization::Global;
  opt.scale.vmin = -m, opt.scale.vmax = m;
  if (opt.colorbar_label.empty()) opt.colorbar_label = "A − B";
  return layout_heatmap(d, opt);
}

void render_diff(const LabelledMatrix& a, const LabelledMatrix& b, const HeatmapOptions& opt,
                 const std::filesystem::path& out, const PaintOptions& paint) {
  format_from_path(out);
  paint_to_file(layout_diff(a, b, opt), out, paint);
}

}  // namespace attnviz::render
