// Colours, colormaps (256-entry tables from their published definitions) and value normalization.
#pragma once
#include <attnviz/tensor.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace attnviz::render {

// A colour with components in [0, 1].
struct Color {
  double r = 0, g = 0, b = 0, a = 1;
  static Color rgb8(int r, int g, int b, double a = 1.0) { return {r / 255.0, g / 255.0, b / 255.0, a}; }
  Color with_alpha(double alpha) const { return {r, g, b, alpha}; }
  bool operator==(const Color&) const = default;
};

inline constexpr Color kBlack{0, 0, 0, 1};
inline constexpr Color kWhite{1, 1, 1, 1};
inline constexpr Color kTransparent{0, 0, 0, 0};
// Cells whose value is NaN or +-Inf are drawn in this colour (and counted in the caption).
inline constexpr Color kNonFinite{1.0, 0.0, 1.0, 1.0};  // magenta: absent from every colormap here

// Black or white, whichever reads better on `background` (WCAG relative luminance).
Color contrast_text_color(Color background);
double relative_luminance(Color c);

// A colormap: 256 RGB entries, looked up by t in [0, 1] (linear interpolation between entries).
//   viridis, magma, inferno, plasma: matplotlib's _cm_listed tables (van der Walt & Smith, 2015).
//   cividis: Nuñez, Anderton & Renslow (2018), as shipped in matplotlib.
//   gray: black -> white.  coolwarm: Moreland's diverging map (2009), blue -> white -> red,
//   for signed data such as differences between heads (centre it with vmin = -vmax).
class Colormap {
 public:
  using Table = std::array<std::array<std::uint8_t, 3>, 256>;

  // The colormap called `name`; throws UsageError listing the known names.
  static const Colormap& get(std::string_view name);
  static std::vector<std::string> names();  // viridis, magma, inferno, plasma, cividis, gray, coolwarm

  const std::string& name() const { return name_; }
  bool diverging() const { return diverging_; }
  const Table& table() const { return *table_; }

  // Colour at t in [0, 1] (clamped); NaN gives kNonFinite.
  Color at(double t) const;
  // The same as 8-bit RGB (what a PNG pixel holds).
  std::array<std::uint8_t, 3> at8(double t) const;

  Colormap(std::string name, const Table* table, bool diverging)
      : name_(std::move(name)), table_(table), diverging_(diverging) {}

 private:
  std::string name_;
  const Table* table_;
  bool diverging_;
};

// How values map to the colormap's [0, 1].
//   Global: one range over everything shown (the matrix, or all panels of a grid): [min, max] of
//           the finite values, unless vmin/vmax are given.
//   PerRow: each row scaled to its own [min, max] (shows the shape of every query's distribution);
//           the colorbar then reads 0..1 "row-normalized".
//   None:   raw values on a fixed range [0, 1] (attention weights are probabilities), unless
//           vmin/vmax are given; values outside are clamped.
enum class Normalization { Global, PerRow, None };
Normalization parse_normalization(std::string_view s);  // "global" | "row" | "none"; UsageError
std::string to_string(Normalization n);

struct ScaleOptions {
  Normalization norm = Normalization::Global;
  std::optional<double> vmin, vmax;  // override the range (Global / None)
};

// The value range a colorbar shows and the mapping value -> t.
struct ValueRange {
  double vmin = 0, vmax = 1;
  double to_unit(double v) const;  // (v - vmin) / (vmax - vmin), clamped to [0, 1]; NaN stays NaN
};

// Range of the finite values of m (with the options applied); a constant matrix gives a
// non-empty range around its value so nothing divides by zero.
ValueRange value_range(const Mat& m, const ScaleOptions& opt);
ValueRange value_range(const std::vector<const Mat*>& mats, const ScaleOptions& opt);

// m mapped to t in [0, 1] per cell under the options (PerRow applied here); NaN/Inf stay NaN.
// m: [R, C] -> [R, C]
Mat normalize(const Mat& m, const ScaleOptions& opt, const ValueRange& range);

// Number of NaN / Inf cells.
int count_non_finite(const Mat& m);

// A qualitative palette for "one colour per head" (matplotlib tab10), cycled.
Color categorical_color(int index);

}  // namespace attnviz::render
