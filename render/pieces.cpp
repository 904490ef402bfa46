// Shared plot pieces: picking a matrix from a record, colorbar, ticks, number format, titles, and
// multi-panel composition.
#include <attnviz/error.hpp>
#include <attnviz/render/plots.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace attnviz::render {

const AttentionTensor& select_tensor(const AttentionRecord& record, const std::string& name) {
  if (record.tensors.empty()) throw InputError("", "the record holds no attention tensors");
  if (name.empty()) return record.tensors.front();
  if (const AttentionTensor* t = record.find(name)) return *t;
  std::string known;
  for (const auto& t : record.tensors) known += (known.empty() ? "" : ", ") + t.name;
  throw UsageError("no tensor '" + name + "' in the record (it has: " + known + ")");
}

namespace {
std::vector<std::string> axis_labels(const AttentionRecord& record, const std::string& axis, int n) {
  const auto* toks = record.axis_tokens(axis);
  if (toks && static_cast<int>(toks->size()) == n) return *toks;
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(std::to_string(i));
  return out;
}
}  // namespace

std::string value_quantity(const std::string& name) {
  auto ends = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  if (ends(".norm")) return "norm ‖α f(x)‖";
  if (ends(".norm_sum")) return "norm ‖Σ α f(x) W_O‖";
  if (ends(".mixing")) return "context mixing (value zeroing)";
  if (ends("mixing_rollout")) return "mixing rollout (value zeroing)";
  // Relevance maps (Chefer et al. 2021): the translator's "decoder.relevance_cross/_self" and the
  // LMs' "decoder.relevance" roll out gradient x attention; "decoder.lrp_relevance_*" roll out
  // gradient x LRP relevance.
  const std::string last = name.substr(name.rfind('.') == std::string::npos ? 0 : name.rfind('.') + 1);
  if (last.rfind("lrp_relevance", 0) == 0) return "relevance (LRP ⊙ ∇A, rolled out)";
  if (last.rfind("relevance", 0) == 0) return "relevance (∇A ⊙ A, rolled out)";
  return "";
}

LabelledMatrix select_matrix(const AttentionRecord& record, const Selection& sel) {
  const AttentionTensor& t = select_tensor(record, sel.tensor);
  if (t.heads <= 0 || t.queries <= 0 || t.keys <= 0)
    throw InputError("", "tensor '" + t.name + "' is empty");
  LabelledMatrix m;
  std::string heads;
  if (sel.mean_heads) {
    m.values = t.mean_heads();
    heads = t.heads == 1 ? "head 0" : fmt::format("mean of {} heads", t.heads);
  } else {
    if (sel.head < 0 || sel.head >= t.heads)
      throw UsageError(fmt::format("head {} is out of range: tensor '{}' has {} head{}", sel.head, t.name, t.heads,
                                   t.heads == 1 ? "" : "s (0.." + std::to_string(t.heads - 1) + ")"));
    m.values = t.head(sel.head);
    heads = fmt::format("head {} of {}", sel.head, t.heads);
  }
  m.row_labels = axis_labels(record, t.query_axis, t.queries);
  m.col_labels = axis_labels(record, t.key_axis, t.keys);
  m.row_axis = t.query_axis.empty() ? "query" : "query: " + t.query_axis;
  m.col_axis = t.key_axis.empty() ? "key" : "key: " + t.key_axis;
  TensorName tn = parse_tensor_name(t.name);
  m.quantity = value_quantity(t.name);
  m.title = t.name + (tn.layer >= 0 ? fmt::format(" · layer {}", tn.layer) : "") + " · " + heads;
  m.causal = causal_tensor(record, t);
  return m;
}

bool causal_tensor(const AttentionRecord& record, const AttentionTensor& t) {
  if (t.queries != t.keys || t.queries < 2) return false;
  // Said by the record (LM generation records), or every weight above the diagonal is 0.
  if (auto it = record.metadata.find("causal"); it != record.metadata.end()) return it->second == "true";
  for (int h = 0; h < t.heads; ++h)
    for (int q = 0; q < t.queries; ++q)
      for (int k = q + 1; k < t.keys; ++k)
        if (t.at(h, q, k) != 0.f) return false;
  return true;
}

std::vector<double> nice_ticks(double lo, double hi, int max_ticks) {
  std::vector<double> out;
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) return {lo};
  max_ticks = std::max(2, max_ticks);
  double raw = (hi - lo) / (max_ticks - 1);
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    step = m * mag;
    if ((std::floor(hi / step + 1e-9) - std::ceil(lo / step - 1e-9)) + 1 <= max_ticks) break;
  }
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
    out.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  return out;
}

std::string format_value(double v, int digits) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Inf" : "-Inf";
  if (v == 0) return "0";
  double a = std::abs(v);
  if (a >= 1e5 || a < 1e-3) return fmt::format("{:.{}g}", v, digits);
  // Fixed notation with `digits` significant digits, at least as many decimals as needed.
  int decimals = std::max(0, digits - 1 - static_cast<int>(std::floor(std::log10(a))));
  std::string s = fmt::format("{:.{}f}", v, decimals);
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  return s;
}

namespace {
bool no_title(const std::string& title) { return title.empty() || title == "-"; }
TextStyle title_style(double size) {
  TextStyle st;
  st.size = size;
  st.bold = true;
  return st;
}
}  // namespace

double add_title(DrawList& list, const std::string& title, double width, double y, double size) {
  if (no_title(title)) return 0;
  TextStyle st = title_style(size);
  st.max_width = std::max(20.0, width - 16);
  TextExtent e = measure_text(title, st);
  list.add(Text{{width / 2, y}, title, st, kBlack, HAlign::Center, VAlign::Top});
  return e.height;
}

double title_space(const std::string& title, double gap, double size) {
  if (no_title(title)) return 0;
  return measure_text(title, title_style(size)).height + gap;
}

void add_fitted_title(DrawList& list, const std::string& title, double margin, double size) {
  if (no_title(title)) return;
  list.width = std::max(list.width, std::min(measure_text(title, title_style(size)).width + 2 * margin, 900.0));
  add_title(list, title, list.width, margin, size);
}

double add_colorbar(DrawList& list, double x, double y, double w, double h, const Colormap& cmap,
                    const ValueRange& range, const std::string& label, int non_finite) {
  // The gradient: 256 rows from vmax (top) to vmin (bottom).
  Image im;
  im.x = x, im.y = y, im.w = w, im.h = h;
  im.width = 1, im.height = 256;
  im.rgba.resize(256 * 4);
  for (int i = 0; i < 256; ++i) {
    auto c = cmap.table()[255 - i];
    im.rgba[i * 4] = c[0], im.rgba[i * 4 + 1] = c[1], im.rgba[i * 4 + 2] = c[2], im.rgba[i * 4 + 3] = 255;
  }
  list.add(std::move(im));
  list.add(Rect{x, y, w, h, kTransparent, Color{0.2, 0.2, 0.2, 1}, 0.6});
  TextStyle st;
  st.size = 8.5;
  double label_w = 0;
  for (double v : nice_ticks(range.vmin, range.vmax, std::max(2, std::min(6, static_cast<int>(h / 22) + 1)))) {
    double ty = y + h - range.to_unit(v) * h;
    list.add(Line{{x + w, ty}, {x + w + 3, ty}, Color{0.2, 0.2, 0.2, 1}, 0.6});
    std::string s = format_value(v, 3);
    list.add(Text{{x + w + 5, ty}, s, st, kBlack, HAlign::Left, VAlign::Middle});
    label_w = std::max(label_w, measure_text(s, st).width);
  }
  double used = w + 5 + label_w;
  if (!label.empty()) {
    TextStyle ls;
    ls.size = 9;
    ls.max_width = h;
    list.add(Text{{x + used + 4, y + h / 2}, label, ls, Color{0.25, 0.25, 0.25, 1}, HAlign::Center, VAlign::Top, 90});
    used += 4 + measure_text(label, ls).height;
  }
  if (non_finite > 0) {
    double sy = y + h + 8;
    list.add(Rect{x, sy, w, w, kNonFinite, kBlack, 0.5, true});
    std::string s = fmt::format("NaN/Inf: {}", non_finite);
    list.add(Text{{x + w + 5, sy + w / 2}, s, st, kBlack, HAlign::Left, VAlign::Middle});
    used = std::max(used, w + 5 + measure_text(s, st).width);
  }
  return used;
}

DrawList compose(const std::vector<FigurePanel>& panels, const FigureOptions& opt) {
  DrawList out;
  int n = static_cast<int>(panels.size());
  int cols = opt.columns > 0 ? opt.columns : std::max(1, n);
  int rows = (n + cols - 1) / cols;
  TextStyle cs;
  cs.size = opt.caption_size;
  std::vector<double> col_w(cols, 0), row_h(rows, 0), cap_h(rows, 0);
  for (int i = 0; i < n; ++i) {
    col_w[i % cols] = std::max(col_w[i % cols], panels[i].content.width);
    row_h[i / cols] = std::max(row_h[i / cols], panels[i].content.height);
  }
  for (int i = 0; i < n; ++i)
    if (!panels[i].caption.empty()) {
      TextStyle s = cs;
      s.wrap_width = col_w[i % cols];
      cap_h[i / cols] = std::max(cap_h[i / cols], measure_text(panels[i].caption, s).height + 4);
    }
  double width = opt.gap;
  for (double w : col_w) width += w + opt.gap;
  double y = opt.gap / 2;
  y += add_title(out, opt.title, width, y, 14);
  if (!opt.title.empty()) y += 6;
  double top = y;
  for (int r = 0; r < rows; ++r) {
    double x = opt.gap;
    for (int c = 0; c < cols && r * cols + c < n; ++c) {
      const auto& p = panels[r * cols + c];
      double px = x + (col_w[c] - p.content.width) / 2;
      out.append(p.content, px, top);
      if (!p.caption.empty()) {
        TextStyle s = cs;
        s.wrap_width = col_w[c];
        out.add(Text{{x + col_w[c] / 2, top + row_h[r] + 2}, p.caption, s, kBlack, HAlign::Center, VAlign::Top});
      }
      x += col_w[c] + opt.gap;
    }
    top += row_h[r] + cap_h[r] + opt.gap;
  }
  out.width = width;
  out.height = top;
  return out;
}

}  // namespace attnviz::render
