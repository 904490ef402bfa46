// Heatmap layout: one matrix with token labels, colorbar, title, cell values, alignment markers.
#include <attnviz/error.hpp>
#include <attnviz/render/plots.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <cmath>

namespace attnviz::render {

namespace {
const Color kSure = Color::rgb8(228, 26, 28);      // red: visible on every sequential colormap here
const Color kAxisText{0.15, 0.15, 0.15, 1};

}  // namespace

DrawList layout_heatmap(const LabelledMatrix& m, const HeatmapOptions& opt) {
  // m.values: [Q, K]
  const int Q = static_cast<int>(m.values.rows()), K = static_cast<int>(m.values.cols());
  if (Q <= 0 || K <= 0) throw InputError("", "cannot draw an empty matrix");
  const Colormap& cmap = Colormap::get(opt.cmap);
  ValueRange range = value_range(m.values, opt.scale);
  Mat unit = normalize(m.values, opt.scale, range);  // [Q, K] in [0, 1], NaN for non-finite
  int non_finite = count_non_finite(m.values);

  // Cell size: large for small matrices, at least 4 pt so 200x200 stays a readable picture.
  const int n = std::max(Q, K);
  double cell = opt.cell > 0 ? opt.cell : std::clamp(std::floor(480.0 / n), 4.0, 40.0);
  // Cells need not be square (automatic size only): a side longer than kMaxSide shrinks its cells,
  // and a matrix far from square (1000x12, 1x100000) is drawn with an aspect of at most 4:1, so
  // the figure follows the matrix's shape within bounds instead of a 12-cell-wide strip 4000 pt tall.
  double ch = cell, cw = cell;  // row height, column width
  if (opt.cell <= 0) {
    constexpr double kMaxSide = 2400, kMaxAspect = 4;
    if (Q * ch > kMaxSide) ch = kMaxSide / Q;
    if (K * cw > kMaxSide) cw = kMaxSide / K;
    if (K * cw < Q * ch / kMaxAspect) cw = std::min(40.0, Q * ch / kMaxAspect / K);
    if (Q * ch < K * cw / kMaxAspect) ch = std::min(40.0, K * cw / kMaxAspect / Q);
    cell = std::min(ch, cw);
  }
  // Matrices drawn as one image (more than kMaxCellRects cells) with automatic cells of at least half
  // a point: cells snapped down to whole half points, so at the default PNG scale (2 pixels per
  // point) every cell is a whole number of pixels. A 4096x4096 matrix then is 4096 px, one pixel a
  // cell, instead of 4800 px with every sixth cell two pixels wide.
  constexpr long kMaxCellRects = 10000;
  const bool cell_image = static_cast<long>(Q) * K > kMaxCellRects;
  if (cell_image && opt.cell <= 0) {
    if (ch >= 0.5) ch = std::floor(ch * 2) / 2;
    if (cw >= 0.5) cw = std::floor(cw * 2) / 2;
    cell = std::min(ch, cw);
  }

  // Labels: font fitted to the cell height, long tokens ellipsized at max_label_width.
  bool labels = opt.labels && cell >= 5;
  TextStyle ls;
  std::vector<std::string> rl = m.row_labels, cl = m.col_labels;
  if (rl.size() != static_cast<size_t>(Q)) rl.clear();
  if (cl.size() != static_cast<size_t>(K)) cl.clear();
  // Cells smaller than a readable label (5 pt): token labels are thinned to every rstride-th row
  // and cstride-th column (about 7 pt apart) instead of vanishing; plain indices get ticks below.
  int rstride = 1, cstride = 1;
  if (opt.labels && !labels && (!rl.empty() || !cl.empty())) {
    labels = true;
    rstride = std::max(1, static_cast<int>(std::ceil(7.0 / ch)));
    cstride = std::max(1, static_cast<int>(std::ceil(7.0 / cw)));
  }
  // No tokens for an axis: its labels are the indices (decided once: the loop condition must not
  // see the vector it fills).
  if (rl.empty())
    for (int i = 0; i < Q; ++i) rl.push_back(std::to_string(i));
  if (cl.empty())
    for (int i = 0; i < K; ++i) cl.push_back(std::to_string(i));
  double row_w = 0, col_h = 0;
  if (labels) {
    // Unhinted metrics scale linearly with the size: measure every label once at 10 pt, then fit
    // the size to the cell height and derive the label widths.
    TextStyle ref;
    ref.size = 10;
    double wr = 0, wc = 0, hmax = 0;
    for (size_t i = 0; i < rl.size(); i += rstride) {
      TextExtent e = measure_text(rl[i], ref);
      wr = std::max(wr, e.width), hmax = std::max(hmax, e.height);
    }
    for (size_t i = 0; i < cl.size(); i += cstride) {
      TextExtent e = measure_text(cl[i], ref);
      wc = std::max(wc, e.width), hmax = std::max(hmax, e.height);
    }
    const double slot = std::min(ch * rstride, cw * cstride);   // = cell unless thinned
    ls.size = std::clamp(std::floor(2 * 10 * std::max(cell, slot) * 0.98 / std::max(hmax, 1e-9)) / 2, 3.5, 11.0);
    ls.max_width = opt.max_label_width;
    row_w = std::min(opt.max_label_width, wr * ls.size / 10);
    col_h = std::min(opt.max_label_width, wc * ls.size / 10);
  }

  DrawList out;
  const double margin = 12, pad = 4;
  double y = margin;
  std::string title = opt.title.empty() ? m.title : opt.title;
  // The title is placed after the width is known; reserve its height now.
  const double title_h = title_space(title, 8);
  std::string note;
  if (non_finite > 0) note = fmt::format("{} non-finite cell{} (NaN/Inf) drawn hatched magenta", non_finite, non_finite == 1 ? "" : "s");
  if (m.causal) note += std::string(note.empty() ? "" : "; ") + "light gray above the diagonal: masked (causal), not attended";
  TextStyle ns;
  ns.size = 9;
  double note_h = note.empty() ? 0 : measure_text(note, ns).height + 4;
  y += title_h + note_h;

  // Axis titles (italic grey), left of the row labels (rotated) and under the column labels.
  TextStyle as;
  as.size = 9;
  as.italic = true;
  bool axis_titles = labels && (!m.row_axis.empty() || !m.col_axis.empty());
  double axis_h = axis_titles ? measure_text("Ag", as).height + 2 : 0;
  const bool index_ticks = !labels && opt.labels && n > 1;
  const double mx = margin + axis_h + (labels ? row_w + pad : index_ticks ? 22 : 0);
  const double my = y;
  const double mw = K * cw, mh = Q * ch;

  // Cells: one filled rect each (NaN/Inf hatched magenta) up to kMaxCellRects cells; above that
  // the cell field is one image of K x Q pixels scaled with nearest-neighbour filtering (SVG/PDF
  // embed it once, labels and colorbar stay vector): a 512x512 SVG of rects is 56.6 MB, and 4096^2
  // rects would take minutes to draw. Non-finite cells are plain magenta pixels there.
  out.ops.reserve((cell_image ? 1 : static_cast<size_t>(Q) * K) + 2 * (Q + K) + 64);
  if (cell_image) {
    // More cells than any figure shows pixels on a side (cairo refuses images over 32767 px):
    // each image pixel then covers a bin of cells and shows the bin's largest weight, so a peak
    // never disappears in the downsampling; a bin with a non-finite cell is magenta.
    constexpr int kMaxImageSide = 8192;
    const int iw = std::min(K, kMaxImageSide), ih = std::min(Q, kMaxImageSide);
    Image im{mx, my, mw, mh, iw, ih, std::vector<std::uint8_t>(static_cast<size_t>(ih) * iw * 4), false};
    // Colours from a table of 4096 steps of t (at most ~0.1 of an 8-bit level from at8(t)):
    // at8 per cell was a third of a 4096x4096 render.
    constexpr int kSteps = 4095;
    std::vector<std::array<std::uint8_t, 4>> lut(kSteps + 2);
    for (int i = 0; i <= kSteps; ++i) {
      const auto c = cmap.at8(static_cast<double>(i) / kSteps);
      lut[i] = {c[0], c[1], c[2], 255};
    }
    lut[kSteps + 1] = {255, 0, 255, 255};  // non-finite: magenta
    auto index = [](double t) { return std::isnan(t) ? kSteps + 1 : static_cast<int>(std::clamp(t, 0.0, 1.0) * kSteps + 0.5); };
    if (iw == K && ih == Q) {
      // One pixel per cell.
      for (int q = 0; q < Q; ++q) {
        std::uint8_t* p = &im.rgba[static_cast<size_t>(q) * iw * 4];
        for (int k = 0; k < K; ++k, p += 4) std::memcpy(p, lut[index(unit(q, k))].data(), 4);
      }
    }
    for (int py = 0; py < ih && !(iw == K && ih == Q); ++py) {
      const int q0 = static_cast<int>(static_cast<long>(py) * Q / ih);
      const int q1 = std::max(q0 + 1, static_cast<int>(static_cast<long>(py + 1) * Q / ih));
      for (int px = 0; px < iw; ++px) {
        const int k0 = static_cast<int>(static_cast<long>(px) * K / iw);
        const int k1 = std::max(k0 + 1, static_cast<int>(static_cast<long>(px + 1) * K / iw));
        double t = -1;
        bool bad = false;
        for (int q = q0; q < q1 && !bad; ++q)
          for (int k = k0; k < k1; ++k) {
            const double u = unit(q, k);
            if (std::isnan(u)) { bad = true; break; }
            t = std::max(t, u);
          }
        std::memcpy(&im.rgba[(static_cast<size_t>(py) * iw + px) * 4], lut[bad ? kSteps + 1 : index(t)].data(), 4);
      }
    }
    out.add(std::move(im));
  }
  for (int q = 0; q < Q && !cell_image; ++q)
    for (int k = 0; k < K; ++k) {
      double t = unit(q, k);
      if (std::isnan(t)) out.add(Rect{mx + k * cw, my + q * ch, cw, ch, kNonFinite, kBlack, 0, true});
      else out.add(Rect{mx + k * cw, my + q * ch, cw, ch, cmap.at(t)});
    }

  // Cell values for small matrices, in black or white for contrast with the cell.
  if (opt.values_max_size > 0 && Q <= opt.values_max_size && K <= opt.values_max_size) {
    std::vector<std::string> texts(static_cast<size_t>(Q) * K);
    for (int q = 0; q < Q; ++q)
      for (int k = 0; k < K; ++k) {
        // Two decimals reads evenly across a row of probabilities; other magnitudes get 2 significant digits.
        double v = m.values(q, k);
        texts[q * K + k] = std::isfinite(v) && std::abs(v) < 10 ? fmt::format("{:.2f}", v) : format_value(v, 2);
      }
    TextStyle vs;
    vs.size = fit_font_size({"-0.00"}, vs, cell * 0.86, cell * 0.5, 3, 10);
    if (vs.size >= 4.5) {
      for (int q = 0; q < Q; ++q)
        for (int k = 0; k < K; ++k) {
          const bool hatched = std::isnan(unit(q, k));
          Color bg = hatched ? kWhite : cmap.at(unit(q, k));
          TextStyle s = vs;
          s.max_width = cell * 0.95;
          const Point at{mx + (k + 0.5) * cw, my + (q + 0.5) * ch};
          if (hatched) {
            // "NaN"/"Inf" on a white plate: black text over the magenta-black hatching is unreadable.
            const TextExtent e = measure_text(texts[q * K + k], s);
            const double w = std::min(e.width, s.max_width) + 0.3 * s.size, h = e.height + 0.1 * s.size;
            out.add(Rect{at.x - w / 2, at.y - h / 2, w, h, kWhite});
          }
          out.add(Text{at, texts[q * K + k], s, contrast_text_color(bg), HAlign::Center, VAlign::Middle});
        }
    }
  }

  // Alignment markers: link (source i, target j) marks row j, column i.
  bool any_marker = false;
  // Causal: the masked cells above the diagonal are "not attended", drawn as one light-gray
  // staircase over their cells (and values), not in the colour of a zero weight.
  if (m.causal && Q == K && Q > 1) {
    const double w = mw / K, h = mh / Q;
    Polygon p;
    p.fill = Color{0.9, 0.9, 0.9, 1};
    p.points.push_back({mx + w, my});
    p.points.push_back({mx + mw, my});
    p.points.push_back({mx + mw, my + (Q - 1) * h});
    for (int q = Q - 1; q >= 1; --q) {
      p.points.push_back({mx + (q + 1) * w, my + q * h});
      p.points.push_back({mx + q * w, my + q * h});
      p.points.push_back({mx + q * w, my + (q - 1) * h});
    }
    out.add(std::move(p));
  }
  auto cell_ok = [&](int row, int col) { return row >= 0 && row < Q && col >= 0 && col < K; };
  if (opt.markers.gold) {
    for (const auto& l : opt.markers.gold->links) {
      if (!cell_ok(l.target, l.source)) continue;
      any_marker = true;
      double inset = std::max(1.0, cell * 0.08), lw = std::clamp(cell * 0.07, 0.8, 2.5);
      double x0 = mx + l.source * cw + (cw - cell) / 2 + inset, y0 = my + l.target * ch + (ch - cell) / 2 + inset,
             s = cell - 2 * inset;
      if (l.sure) {
        out.add(Rect{x0, y0, s, s, kTransparent, kSure, lw});
      } else {
        // Dashed outline: four dashed lines.
        double d = std::max(1.5, s / 7);
        Point a{x0, y0}, b{x0 + s, y0}, c{x0 + s, y0 + s}, e{x0, y0 + s};
        for (auto [p, q2] : {std::pair{a, b}, {b, c}, {c, e}, {e, a}})
          out.add(Line{p, q2, kSure, lw, false, d});
      }
    }
  }
  if (opt.markers.predicted) {
    for (const auto& l : opt.markers.predicted->links) {
      if (!cell_ok(l.target, l.source)) continue;
      any_marker = true;
      double r = std::max(1.2, cell * 0.09);
      out.add(Circle{{mx + l.source * cw + cell * 0.2 + r * 0.3, my + l.target * ch + cell * 0.2 + r * 0.3}, r,
                     kWhite, kBlack, std::max(0.4, r * 0.35)});
    }
  }
  out.add(Rect{mx, my, mw, mh, kTransparent, Color{0.3, 0.3, 0.3, 1}, 0.6});

  // Labels: rows to the left, right-aligned; columns below, rotated 90 degrees (read bottom-up).
  if (labels) {
    for (int q = 0; q < Q; q += rstride)
      out.add(Text{{mx - pad, my + (q + 0.5) * ch}, rl[q], ls, kAxisText, HAlign::Right, VAlign::Middle});
    for (int k = 0; k < K; k += cstride)
      out.add(Text{{mx + (k + 0.5) * cw, my + mh + pad}, cl[k], ls, kAxisText, HAlign::Right, VAlign::Middle, 90});
  }
  double bottom = my + mh + (labels ? pad + col_h : 0);
  // Too many tokens for labels: index ticks instead (0, 20, 40, ...), so cells can still be found.
  if (index_ticks) {
    TextStyle ts;
    ts.size = 7;
    Color tc{0.3, 0.3, 0.3, 1};
    for (double v : nice_ticks(0, Q - 1, 8)) {
      int i = static_cast<int>(std::lround(v));
      double yy = my + (i + 0.5) * ch;
      out.add(Line{{mx - 3, yy}, {mx, yy}, tc, 0.6});
      out.add(Text{{mx - 4, yy}, std::to_string(i), ts, tc, HAlign::Right, VAlign::Middle});
    }
    for (double v : nice_ticks(0, K - 1, 8)) {
      int i = static_cast<int>(std::lround(v));
      double xx = mx + (i + 0.5) * cw;
      out.add(Line{{xx, my + mh}, {xx, my + mh + 3}, tc, 0.6});
      out.add(Text{{xx, my + mh + 4}, std::to_string(i), ts, tc, HAlign::Center, VAlign::Top});
    }
    bottom += 4 + measure_text("0", ts).height;
  }
  if (axis_titles) {
    // Row title: centred on the rows, allowed to run down beside the column labels (free space).
    as.max_width = mh + col_h;
    double len = std::min(measure_text(m.row_axis, as).width, as.max_width);
    double cy = len <= mh ? my + mh / 2 : my + len / 2;
    out.add(Text{{margin, cy}, m.row_axis, as, Color{0.4, 0.4, 0.4, 1}, HAlign::Center, VAlign::Top, 90});
    // Column title: centred under the columns, a little wider than the matrix at most.
    as.max_width = mw + 2 * std::min(row_w, 12.0);
    out.add(Text{{mx + mw / 2, bottom + 3}, m.col_axis, as, Color{0.4, 0.4, 0.4, 1}, HAlign::Center, VAlign::Top});
    bottom += 3 + axis_h;
  }

  // Colorbar to the right, at least 120 pt tall so its ticks do not crowd.
  double right = mx + mw;
  double cb_h = std::max(mh, 120.0);
  double legend_y = my + cb_h;
  if (opt.colorbar) {
    std::string label = !opt.colorbar_label.empty() ? opt.colorbar_label
                        : !m.quantity.empty() ? (opt.scale.norm == Normalization::PerRow ? "row-normalized " : "") + m.quantity
                        : opt.scale.norm == Normalization::PerRow ? "row-normalized weight"
                                                                  : "attention weight";
    double used = add_colorbar(out, right + 14, my, 12, cb_h, cmap, range, label, non_finite);
    right += 14 + used;
    legend_y = my + cb_h + (non_finite > 0 ? 24 : 0);
  }
  // Marker legend under the colorbar (or under the matrix when there is no colorbar).
  if (any_marker) {
    TextStyle ks;
    ks.size = 8.5;
    double lx = opt.colorbar ? mx + mw + 14 : mx, ly = (opt.colorbar ? legend_y : bottom) + 10;
    auto entry = [&](const std::string& text, auto&& draw_symbol) {
      draw_symbol(lx, ly);
      out.add(Text{{lx + 16, ly + 5}, text, ks, kBlack, HAlign::Left, VAlign::Middle});
      right = std::max(right, lx + 16 + measure_text(text, ks).width);
      ly += 14;
    };
    if (opt.markers.gold) {
      entry("gold sure", [&](double x, double yy) { out.add(Rect{x, yy, 10, 10, kTransparent, kSure, 1.5}); });
      bool has_possible = std::any_of(opt.markers.gold->links.begin(), opt.markers.gold->links.end(),
                                      [](const AlignmentLink& l) { return !l.sure; });
      if (has_possible)
        entry("gold possible", [&](double x, double yy) {
          Point a{x, yy}, b{x + 10, yy}, c{x + 10, yy + 10}, e{x, yy + 10};
          for (auto [p, q2] : {std::pair{a, b}, {b, c}, {c, e}, {e, a}}) out.add(Line{p, q2, kSure, 1.5, false, 2});
        });
    }
    if (opt.markers.predicted)
      entry("predicted", [&](double x, double yy) { out.add(Circle{{x + 5, yy + 5}, 3, kWhite, kBlack, 1}); });
    if (opt.colorbar) bottom = std::max(bottom, ly);
    else bottom = ly;
  }
  if (opt.colorbar) bottom = std::max(bottom, legend_y);

  out.width = std::ceil(right + margin);
  add_fitted_title(out, title, margin);
  if (!note.empty()) {
    ns.max_width = out.width - 2 * margin;
    out.add(Text{{out.width / 2, margin + title_h}, note, ns, Color{0.5, 0, 0.5, 1}, HAlign::Center, VAlign::Top});
  }
  out.height = std::ceil(bottom + margin);
  return out;
}

void render_heatmap(const AttentionRecord& record, const Selection& sel, const HeatmapOptions& opt,
                    const std::filesystem::path& out, const PaintOptions& paint) {
  format_from_path(out);  // fail on a bad extension before any work
  paint_to_file(layout_heatmap(select_matrix(record, sel), opt), out, paint);
}

}  // namespace attnviz::render
