// Line chart: one polyline (with point markers) per series over shared axes, grid at nice ticks,
// a legend to the right. Used for the perturbation curves of `eval saliency` in the demo.
#include <attnviz/render/plots.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace attnviz::render {

DrawList layout_line_chart(const std::vector<LineSeries>& series, const LineChartOptions& opt) {
  if (series.empty()) throw std::invalid_argument("line chart: no series");
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const auto& s : series) {
    if (s.x.size() != s.y.size() || s.x.empty())
      throw std::invalid_argument("line chart: series '" + s.name + "' needs as many x as y values (and some)");
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
    }
  }
  if (!std::isnan(opt.xmin)) x0 = opt.xmin;
  if (!std::isnan(opt.xmax)) x1 = opt.xmax;
  if (!std::isnan(opt.ymin)) y0 = opt.ymin;
  if (!std::isnan(opt.ymax)) y1 = opt.ymax;
  if (!std::isfinite(x0) || !std::isfinite(y0)) throw std::invalid_argument("line chart: no finite points");
  if (!(x1 > x0)) x1 = x0 + 1;
  if (!(y1 > y0)) y1 = y0 + 1;

  TextStyle tick;
  tick.size = 10;
  TextStyle label = tick;
  label.size = 11;
  TextStyle legend = label;
  double legend_w = 0;
  for (const auto& s : series) legend_w = std::max(legend_w, measure_text(s.name, legend).width);
  const double top = 12 + title_space(opt.title, 10), left = 58, plot_w = opt.width, plot_h = opt.height;
  DrawList dl;
  dl.width = left + plot_w + 24 + 30 + legend_w + 12;
  dl.height = top + plot_h + 46;
  const Color grid = Color::rgb8(225, 225, 225), axis = Color::rgb8(90, 90, 90);
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * plot_w; };
  auto py = [&](double y) { return top + plot_h - (y - y0) / (y1 - y0) * plot_h; };
  // Grid and tick labels.
  for (double v : nice_ticks(x0, x1, 6)) {
    dl.add(Line{{px(v), top}, {px(v), top + plot_h}, grid, 0.75});
    dl.add(Text{{px(v), top + plot_h + 5}, format_value(v, 2), tick, axis, HAlign::Center, VAlign::Top});
  }
  for (double v : nice_ticks(y0, y1, 6)) {
    dl.add(Line{{left, py(v)}, {left + plot_w, py(v)}, grid, 0.75});
    dl.add(Text{{left - 6, py(v)}, format_value(v, 2), tick, axis, HAlign::Right, VAlign::Middle});
  }
  dl.add(Rect{left, top, plot_w, plot_h, kTransparent, axis, 1});
  if (!opt.x_label.empty())
    dl.add(Text{{left + plot_w / 2, top + plot_h + 22}, opt.x_label, label, kBlack, HAlign::Center, VAlign::Top});
  if (!opt.y_label.empty())
    dl.add(Text{{14, top + plot_h / 2}, opt.y_label, label, kBlack, HAlign::Center, VAlign::Middle, 90});
  // The series, clipped to the plot area, and the legend.
  dl.add(PushClip{left - 4, top - 4, plot_w + 8, plot_h + 8});
  for (size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    const Color c = s.color == kTransparent ? categorical_color(static_cast<int>(k)) : s.color;
    Polygon pl;
    pl.closed = false;
    pl.stroke = c;
    pl.stroke_width = 1.6;
    for (size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) pl.points.push_back({px(s.x[i]), py(s.y[i])});
    dl.add(pl);
    for (const Point& p : pl.points) dl.add(Circle{p, 2.2, c});
  }
  dl.add(PopClip{});
  const double lx = left + plot_w + 24;
  for (size_t k = 0; k < series.size(); ++k) {
    const Color c = series[k].color == kTransparent ? categorical_color(static_cast<int>(k)) : series[k].color;
    const double y = top + 8 + 18 * static_cast<double>(k);
    dl.add(Line{{lx, y}, {lx + 22, y}, c, 2});
    dl.add(Circle{{lx + 11, y}, 2.2, c});
    dl.add(Text{{lx + 30, y}, series[k].name, legend, kBlack, HAlign::Left, VAlign::Middle});
  }
  add_title(dl, opt.title, dl.width, 8);
  return dl;
}

void render_line_chart(const std::vector<LineSeries>& series, const LineChartOptions& opt,
                       const std::filesystem::path& out, const PaintOptions& paint) {
  paint_to_file(layout_line_chart(series, opt), out, paint);
}

}  // namespace attnviz::render
