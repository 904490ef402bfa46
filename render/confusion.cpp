// Confusion matrix: counts in the cells, true class down, predicted across, colorbar at the side.
#include <attnviz/render/plots.hpp>

#include <algorithm>
#include <stdexcept>

namespace attnviz::render {

DrawList layout_confusion(const std::vector<std::vector<long>>& counts, const ConfusionOptions& opt) {
  // counts: [n, n]
  const int n = static_cast<int>(counts.size());
  if (n == 0) throw std::invalid_argument("confusion matrix: no classes");
  for (const auto& row : counts)
    if (static_cast<int>(row.size()) != n) throw std::invalid_argument("confusion matrix: rows must have n entries");
  if (!opt.labels.empty() && static_cast<int>(opt.labels.size()) != n)
    throw std::invalid_argument("confusion matrix: one label per class expected");
  auto label = [&](int k) { return opt.labels.empty() ? std::to_string(k) : opt.labels[k]; };
  double off = 1;   // the scale's top: the largest error count (at least 1)
  for (int t = 0; t < n; ++t)
    for (int p = 0; p < n; ++p)
      if (t != p) off = std::max(off, static_cast<double>(counts[t][p]));
  const Colormap& cmap = Colormap::get(opt.colormap);
  const ValueRange range{0, off};
  const double cell = opt.cell, left = 64, top = opt.title.empty() ? 16 : 44, grid = n * cell;
  DrawList dl;
  dl.width = left + grid + 110;
  dl.height = top + grid + 56;
  if (!opt.title.empty()) add_title(dl, opt.title, dl.width, 8);
  TextStyle small;
  small.size = 11;
  TextStyle axis = small;
  axis.italic = true;
  for (int t = 0; t < n; ++t)
    for (int p = 0; p < n; ++p) {
      const double x = left + p * cell, y = top + t * cell;
      const Color c = cmap.at(range.to_unit(static_cast<double>(counts[t][p])));
      dl.add(Rect{x, y, cell, cell, c});
      dl.add(Text{{x + cell / 2, y + cell / 2}, std::to_string(counts[t][p]), small, contrast_text_color(c),
                  HAlign::Center, VAlign::Middle});
    }
  for (int k = 0; k < n; ++k) {
    dl.add(Text{{left - 6, top + k * cell + cell / 2}, label(k), small, kBlack, HAlign::Right, VAlign::Middle});
    dl.add(Text{{left + k * cell + cell / 2, top + grid + 4}, label(k), small, kBlack, HAlign::Center, VAlign::Top});
  }
  dl.add(Text{{left + grid / 2, top + grid + 24}, "predicted class", axis, kBlack, HAlign::Center, VAlign::Top});
  dl.add(Text{{18, top + grid / 2}, "true class", axis, kBlack, HAlign::Center, VAlign::Middle, 90});
  add_colorbar(dl, left + grid + 16, top, 14, grid, cmap, range, "count (scale ends at the largest error count)");
  return dl;
}

void render_confusion(const std::vector<std::vector<long>>& counts, const ConfusionOptions& opt,
                      const std::filesystem::path& out, const PaintOptions& paint) {
  paint_to_file(layout_confusion(counts, opt), out, paint);
}

}  // namespace attnviz::render
