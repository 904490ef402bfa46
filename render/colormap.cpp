// Colormap lookup, value ranges and normalization (global / per row / none), text contrast.
#include <attnviz/error.hpp>
#include <attnviz/render/colormap.hpp>

#include "colormap_tables.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace attnviz::render {

namespace {
const std::vector<Colormap>& all_colormaps() {
  static const std::vector<Colormap> maps = {
      {"viridis", &tables::viridis, false}, {"magma", &tables::magma, false},
      {"inferno", &tables::inferno, false}, {"plasma", &tables::plasma, false},
      {"cividis", &tables::cividis, false}, {"gray", &tables::gray, false},
      {"coolwarm", &tables::coolwarm, true},
  };
  return maps;
}

double srgb_to_linear(double c) { return c <= 0.04045 ? c / 12.92 : std::pow((c + 0.055) / 1.055, 2.4); }
}  // namespace

const Colormap& Colormap::get(std::string_view name) {
  for (const auto& m : all_colormaps())
    if (m.name() == name) return m;
  std::string known;
  for (const auto& n : names()) known += (known.empty() ? "" : ", ") + n;
  throw UsageError("unknown colormap '" + std::string(name) + "' (known: " + known + ")");
}

std::vector<std::string> Colormap::names() {
  std::vector<std::string> out;
  for (const auto& m : all_colormaps()) out.push_back(m.name());
  return out;
}

Color Colormap::at(double t) const {
  if (std::isnan(t)) return kNonFinite;
  t = std::clamp(t, 0.0, 1.0);
  double pos = t * 255.0;
  int i = std::min(254, static_cast<int>(pos));
  double f = pos - i;
  const auto& a = (*table_)[i];
  const auto& b = (*table_)[i + 1];
  auto mix = [f](int x, int y) { return ((1 - f) * x + f * y) / 255.0; };
  return {mix(a[0], b[0]), mix(a[1], b[1]), mix(a[2], b[2]), 1.0};
}

std::array<std::uint8_t, 3> Colormap::at8(double t) const {
  Color c = at(t);
  auto q = [](double v) { return static_cast<std::uint8_t>(std::lround(std::clamp(v, 0.0, 1.0) * 255.0)); };
  return {q(c.r), q(c.g), q(c.b)};
}

double relative_luminance(Color c) {
  return 0.2126 * srgb_to_linear(c.r) + 0.7152 * srgb_to_linear(c.g) + 0.0722 * srgb_to_linear(c.b);
}

Color contrast_text_color(Color bg) {
  // WCAG contrast ratio (L1 + 0.05) / (L2 + 0.05) against black and against white; pick the larger.
  double l = relative_luminance(bg);
  double vs_black = (l + 0.05) / 0.05;
  double vs_white = 1.05 / (l + 0.05);
  return vs_black >= vs_white ? kBlack : kWhite;
}

Normalization parse_normalization(std::string_view s) {
  if (s == "global") return Normalization::Global;
  if (s == "row") return Normalization::PerRow;
  if (s == "none") return Normalization::None;
  throw UsageError("unknown normalization '" + std::string(s) + "' (known: global, row, none)");
}

std::string to_string(Normalization n) {
  switch (n) {
    case Normalization::Global: return "global";
    case Normalization::PerRow: return "row";
    case Normalization::None: return "none";
  }
  return "?";
}

double ValueRange::to_unit(double v) const {
  if (std::isnan(v)) return v;
  double span = vmax - vmin;
  if (!(span > 0)) return 0.5;
  return std::clamp((v - vmin) / span, 0.0, 1.0);
}

ValueRange value_range(const std::vector<const Mat*>& mats, const ScaleOptions& opt) {
  if (opt.vmin && opt.vmax && !(*opt.vmin < *opt.vmax)) throw UsageError("--vmin must be smaller than --vmax");
  ValueRange r;
  if (opt.norm == Normalization::PerRow) return {0.0, 1.0};
  if (opt.norm == Normalization::None) {
    r = {0.0, 1.0};
  } else {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (const Mat* m : mats)
      for (Eigen::Index i = 0; i < m->size(); ++i) {
        double v = m->data()[i];
        if (!std::isfinite(v)) continue;
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
    if (!std::isfinite(lo)) lo = 0, hi = 1;  // nothing finite
    r = {lo, hi};
  }
  if (opt.vmin) r.vmin = *opt.vmin;
  if (opt.vmax) r.vmax = *opt.vmax;
  if (!(r.vmax > r.vmin)) {
    // A constant matrix (or vmin >= vmax): widen around the value so nothing divides by zero.
    double c = r.vmin, pad = std::max(1e-6, std::abs(c) * 0.5);
    if (c >= 0 && c <= 1 && opt.norm != Normalization::None) r = {std::min(0.0, c), std::max(1.0, c)};
    else r = {c - pad, c + pad};
  }
  return r;
}

ValueRange value_range(const Mat& m, const ScaleOptions& opt) { return value_range(std::vector<const Mat*>{&m}, opt); }

Mat normalize(const Mat& m, const ScaleOptions& opt, const ValueRange& range) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Mat out(m.rows(), m.cols());
  if (opt.norm == Normalization::PerRow) {
    for (Eigen::Index r = 0; r < m.rows(); ++r) {
      double lo = std::numeric_limits<double>::infinity(), hi = -lo;
      for (Eigen::Index c = 0; c < m.cols(); ++c)
        if (std::isfinite(m(r, c))) lo = std::min<double>(lo, m(r, c)), hi = std::max<double>(hi, m(r, c));
      for (Eigen::Index c = 0; c < m.cols(); ++c) {
        double v = m(r, c);
        if (!std::isfinite(v)) out(r, c) = static_cast<float>(nan);
        else out(r, c) = static_cast<float>(hi > lo ? (v - lo) / (hi - lo) : 1.0);
      }
    }
    return out;
  }
  for (Eigen::Index i = 0; i < m.size(); ++i) {
    double v = m.data()[i];
    out.data()[i] = static_cast<float>(std::isfinite(v) ? range.to_unit(v) : nan);
  }
  return out;
}

int count_non_finite(const Mat& m) {
  int n = 0;
  for (Eigen::Index i = 0; i < m.size(); ++i) n += !std::isfinite(m.data()[i]);
  return n;
}

Color categorical_color(int index) {
  // matplotlib "tab10" (Tableau 10).
  static const int tab10[10][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},
                                   {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127},
                                   {188, 189, 34},  {23, 190, 207}};
  const int* c = tab10[((index % 10) + 10) % 10];
  return Color::rgb8(c[0], c[1], c[2]);
}

}  // namespace attnviz::render
