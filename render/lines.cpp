// Lines layout: the bipartite token view, query tokens left, key tokens right, one line per pair.
#include <attnviz/error.hpp>
#include <attnviz/render/plots.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace attnviz::render {

DrawList layout_lines(const AttentionRecord& record, const std::string& tensor, const LinesOptions& opt) {
  const AttentionTensor& t = select_tensor(record, tensor);
  const int Q = t.queries, K = t.keys;
  if (t.heads <= 0 || Q <= 0 || K <= 0) throw InputError("", "tensor '" + t.name + "' is empty");
  // Which heads, each with its colour; the mean is drawn as one set in the first colour.
  std::vector<int> heads = opt.heads;
  if (heads.empty() && !opt.mean_heads)
    for (int h = 0; h < t.heads; ++h) heads.push_back(h);
  for (int h : heads)
    if (h < 0 || h >= t.heads)
      throw UsageError(fmt::format("head {} is out of range: tensor '{}' has {} head{}", h, t.name, t.heads, t.heads == 1 ? "" : "s"));
  std::vector<Mat> mats;
  std::vector<std::string> names;
  if (opt.mean_heads) {
    mats.push_back(t.mean_heads());
    names.push_back(t.heads == 1 ? "head 0" : fmt::format("mean of {} heads", t.heads));
  } else {
    for (int h : heads) mats.push_back(t.head(h)), names.push_back(fmt::format("head {}", h));
  }
  double wmax = 0;
  int non_finite = 0;
  for (const auto& m : mats)
    for (Eigen::Index i = 0; i < m.size(); ++i) {
      if (opt.query >= 0 && i / m.cols() != opt.query) continue;   // one query: scale to its own row
      double v = m.data()[i];
      if (std::isfinite(v)) wmax = std::max(wmax, v);
      else ++non_finite;
    }
  if (!(wmax > 0)) wmax = 1;

  // Row pitch: 18 pt for short sequences, shrinking to 3 pt for long ones (labels hidden < 6 pt).
  const int n = std::max(Q, K);
  double pitch = std::clamp(std::floor(720.0 / n), 3.0, 18.0);
  bool labels = pitch >= 6;
  auto label_of = [&](const std::string& axis, int i, int count) {
    const auto* toks = record.axis_tokens(axis);
    return toks && static_cast<int>(toks->size()) == count ? (*toks)[i] : std::to_string(i);
  };
  TextStyle ls;
  ls.size = std::min(11.0, pitch * 0.7);
  ls.max_width = 110;
  double lw = 0, rw = 0;
  std::vector<std::string> ql(Q), kl(K);
  for (int i = 0; i < Q; ++i) ql[i] = label_of(t.query_axis, i, Q);
  for (int i = 0; i < K; ++i) kl[i] = label_of(t.key_axis, i, K);
  TextStyle hs;  // column headers: the axis names
  hs.size = 9;
  hs.italic = true;
  std::string qa = t.query_axis.empty() ? "query" : "query: " + t.query_axis;
  std::string ka = t.key_axis.empty() ? "key" : "key: " + t.key_axis;
  lw = measure_text(qa, hs).width - 8;
  rw = measure_text(ka, hs).width - 8;
  if (labels) {
    for (auto& s : ql) lw = std::max(lw, std::min(110.0, measure_text(s, ls).width));
    for (auto& s : kl) rw = std::max(rw, std::min(110.0, measure_text(s, ls).width));
  }

  // Lines, weakest first so strong links are on top.
  struct Seg {
    double w;
    int set, q, k;
  };
  std::vector<Seg> segs;
  if (opt.query >= Q)
    throw UsageError(fmt::format("--query {} is out of range: tensor '{}' has {} queries (0..{})", opt.query, t.name, Q, Q - 1));
  for (size_t s = 0; s < mats.size(); ++s)
    for (int q = 0; q < Q; ++q)
      for (int k = 0; k < K && (opt.query < 0 || q == opt.query); ++k) {
        double v = mats[s](q, k);
        if (!std::isfinite(v)) continue;
        double w = v / wmax;
        if (w >= opt.threshold && w > 0) segs.push_back({w, static_cast<int>(s), q, k});
      }
  // Keep the strongest max_lines (a few thousand translucent lines already read as a haze).
  size_t dropped = 0;
  if (opt.max_lines > 0 && segs.size() > static_cast<size_t>(opt.max_lines)) {
    dropped = segs.size() - opt.max_lines;
    std::nth_element(segs.begin(), segs.begin() + dropped, segs.end(), [](const Seg& a, const Seg& b) { return a.w < b.w; });
    segs.erase(segs.begin(), segs.begin() + dropped);
  }
  DrawList out;
  const double margin = 12, gap = std::clamp(60.0 + 6.0 * n, 160.0, 320.0);
  std::string title = opt.title.empty() ? t.name + " · " + (opt.mean_heads ? names[0] : names.size() == 1 ? names[0] : fmt::format("{} heads", names.size()))
                                        : opt.title;
  if (opt.query >= 0 && opt.title.empty()) title += fmt::format(" · query {} ({})", opt.query, ql[opt.query]);
  double y = margin;
  y += title_space(title, 6);
  // Legend of head colours (only when several sets of lines are drawn).
  TextStyle ks;
  ks.size = 9;
  double legend_h = 0;
  std::vector<std::pair<double, std::string>> legend;  // x offset, text
  if (mats.size() > 1 || non_finite > 0 || dropped > 0) legend_h = 16;
  double lx = margin + lw + 8, rx = lx + gap;
  double width = rx + 8 + rw + margin;
  if (legend_h > 0) {
    double x = margin;
    for (size_t i = 0; i < mats.size() && mats.size() > 1; ++i) {
      out.add(Line{{x, y + 6}, {x + 14, y + 6}, categorical_color(static_cast<int>(i)), 3});
      out.add(Text{{x + 18, y + 6}, names[i], ks, kBlack, HAlign::Left, VAlign::Middle});
      x += 18 + measure_text(names[i], ks).width + 12;
      if (x > width - 60 && i + 1 < mats.size()) {
        x = margin;
        y += 14;
      }
    }
    if (dropped > 0) {
      std::string s = fmt::format("strongest {} of {} lines", segs.size(), segs.size() + dropped);
      out.add(Text{{x, y + 6}, s, ks, Color{0.3, 0.3, 0.3, 1}, HAlign::Left, VAlign::Middle});
      x += measure_text(s, ks).width + 12;
    }
    if (non_finite > 0) {
      std::string s = fmt::format("{} NaN/Inf weight{} not drawn", non_finite, non_finite == 1 ? "" : "s");
      out.add(Text{{x, y + 6}, s, ks, Color{0.6, 0, 0.6, 1}, HAlign::Left, VAlign::Middle});
    }
    y += legend_h;
  }
  // Column headers.
  out.add(Text{{lx + 4, y}, qa, hs, Color{0.35, 0.35, 0.35, 1}, HAlign::Right, VAlign::Top});
  out.add(Text{{rx - 4, y}, ka, hs, Color{0.35, 0.35, 0.35, 1}, HAlign::Left, VAlign::Top});
  y += measure_text(qa, hs).height + 6;

  const double top = y;
  auto qy = [&](int i) { return top + (i + 0.5) * pitch + (n - Q) * pitch / 2; };
  auto ky = [&](int i) { return top + (i + 0.5) * pitch + (n - K) * pitch / 2; };

  std::sort(segs.begin(), segs.end(), [](const Seg& a, const Seg& b) { return a.w < b.w; });
  out.ops.reserve(segs.size() + Q + K + 16);
  const double line_max = std::min(opt.max_width, pitch * 0.45);  // dense views get thinner lines
  for (const auto& sg : segs) {
    Color c = mats.size() > 1 ? categorical_color(sg.set) : Color::rgb8(31, 90, 180);
    out.add(Line{{lx + 4, qy(sg.q)}, {rx - 4, ky(sg.k)}, c.with_alpha(std::clamp(0.15 + 0.85 * sg.w, 0.0, 1.0)),
                 std::max(0.25, line_max * sg.w), true});
  }
  // Token labels and dots.
  for (int i = 0; i < Q; ++i) {
    if (labels) out.add(Text{{lx, qy(i)}, ql[i], ls, kBlack, HAlign::Right, VAlign::Middle});
    out.add(Circle{{lx + 4, qy(i)}, std::min(2.0, pitch / 4), Color{0.3, 0.3, 0.3, 1}});
  }
  for (int i = 0; i < K; ++i) {
    if (labels) out.add(Text{{rx + 8, ky(i)}, kl[i], ls, kBlack, HAlign::Left, VAlign::Middle});
    out.add(Circle{{rx - 4, ky(i)}, std::min(2.0, pitch / 4), Color{0.3, 0.3, 0.3, 1}});
  }
  out.width = std::ceil(width);
  add_fitted_title(out, title, margin);
  out.height = std::ceil(top + n * pitch + margin);
  return out;
}

void render_lines(const AttentionRecord& record, const std::string& tensor, const LinesOptions& opt,
                  const std::filesystem::path& out, const PaintOptions& paint) {
  format_from_path(out);
  paint_to_file(layout_lines(record, tensor, opt), out, paint);
}

}  // namespace attnviz::render
