// Grid layout: every selected layer (row) x head (column) as a thumbnail, one shared colour scale.
#include <attnviz/error.hpp>
#include <attnviz/render/plots.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace attnviz::render {

namespace {
bool wanted(const std::vector<int>& list, int v) { return list.empty() || std::find(list.begin(), list.end(), v) != list.end(); }
}  // namespace

DrawList layout_grid(const AttentionRecord& record, const GridOptions& opt) {
  const Colormap& cmap = Colormap::get(opt.cmap);
  // Rows: tensors passing the name and layer filters, in record order.
  std::vector<const AttentionTensor*> rows;
  for (const auto& t : record.tensors) {
    if (!opt.tensors.empty() && t.name.find(opt.tensors) == std::string::npos) continue;
    if (!opt.layers.empty() && !wanted(opt.layers, parse_tensor_name(t.name).layer)) continue;
    rows.push_back(&t);
  }
  // Without --tensors, the attention weights only when the record has any: norms, mixing and
  // relevance maps live on other scales and would wash the weights out of a shared colour bar
  // (pick them with --tensors).
  if (opt.tensors.empty() &&
      std::any_of(rows.begin(), rows.end(), [](const AttentionTensor* t) { return value_quantity(t->name).empty(); }))
    rows.erase(std::remove_if(rows.begin(), rows.end(),
                              [](const AttentionTensor* t) { return !value_quantity(t->name).empty(); }),
               rows.end());
  if (rows.empty()) {
    std::string known;
    for (const auto& t : record.tensors) known += (known.empty() ? "" : ", ") + t.name;
    throw UsageError("no tensor matches the selection (the record has: " + (known.empty() ? "none" : known) + ")");
  }
  // Columns: head indices present in at least one row.
  int max_heads = 0;
  for (auto* t : rows) max_heads = std::max(max_heads, t->heads);
  std::vector<int> heads;
  for (int h = 0; h < max_heads; ++h)
    if (wanted(opt.heads, h)) heads.push_back(h);
  for (int h : opt.heads)
    if (h < 0 || h >= max_heads)
      throw UsageError(fmt::format("head {} is out of range: the selected tensors have {} head{}", h, max_heads,
                                   max_heads == 1 ? "" : "s"));
  const int R = static_cast<int>(rows.size()), C = static_cast<int>(heads.size());

  // Matrices and the shared range.
  std::vector<std::vector<Mat>> mats(R);
  std::vector<const Mat*> all;
  int non_finite = 0;
  for (int r = 0; r < R; ++r) {
    mats[r].resize(C);
    for (int c = 0; c < C; ++c)
      if (heads[c] < rows[r]->heads) {
        mats[r][c] = rows[r]->head(heads[c]);
        non_finite += count_non_finite(mats[r][c]);
      }
  }
  for (auto& row : mats)
    for (auto& m : row)
      if (m.size() > 0) all.push_back(&m);
  ValueRange range = value_range(all, opt.scale);

  double thumb = opt.thumb > 0 ? opt.thumb : std::clamp(std::floor(640.0 / std::max(R, C)), 40.0, 110.0);
  const double gap = std::max(4.0, thumb * 0.08), margin = 12;
  TextStyle hs;  // column and row headers
  hs.size = 9;
  std::vector<std::string> row_names;
  double row_w = 0;
  for (auto* t : rows) {
    TensorName tn = parse_tensor_name(t->name);
    std::string s = tn.layer >= 0 ? fmt::format("{} {}\nlayer {}", tn.stack, tn.kind, tn.layer) : t->name;
    row_names.push_back(s);
  }
  TextStyle rs = hs;
  rs.max_width = 110;
  for (const auto& s : row_names) {
    // Two-line names are measured line by line.
    size_t nl = s.find('\n');
    row_w = std::max({row_w, measure_text(s.substr(0, nl), rs).width,
                      nl == std::string::npos ? 0.0 : measure_text(s.substr(nl + 1), rs).width});
  }
  row_w = std::min(row_w, 110.0);

  DrawList out;
  double y = margin;
  std::string title = opt.title;
  if (title.empty()) {
    title = "attention by layer and head";
    auto it = record.metadata.find("model");
    if (it != record.metadata.end() && !it->second.empty()) title += " · " + it->second;
  }
  const double gx = margin + row_w + 8;
  double grid_w = C * thumb + (C - 1) * gap;
  y += title_space(title, 8);
  // Column headers.
  double head_h = measure_text("head 0", hs).height;
  for (int c = 0; c < C; ++c)
    out.add(Text{{gx + c * (thumb + gap) + thumb / 2, y}, fmt::format("head {}", heads[c]), hs, kBlack, HAlign::Center, VAlign::Top});
  y += head_h + 4;
  const double gy = y;
  TextStyle cs = hs;  // captions under thumbnails
  cs.size = 8;
  const double cap_h = opt.captions.empty() ? 0.0 : measure_text("AER 0.00", cs).height + 2;
  const double pitch = thumb + gap + cap_h;  // row to row

  TextStyle rls = rs;
  for (int r = 0; r < R; ++r) {
    double ty = gy + r * pitch;
    auto cap = opt.captions.find(rows[r]->name);
    // Row header: up to two lines, right-aligned, centred on the row.
    const std::string& nm = row_names[r];
    size_t nl = nm.find('\n');
    if (nl == std::string::npos) {
      out.add(Text{{gx - 8, ty + thumb / 2}, nm, rls, kBlack, HAlign::Right, VAlign::Middle});
    } else {
      out.add(Text{{gx - 8, ty + thumb / 2}, nm.substr(0, nl), rls, kBlack, HAlign::Right, VAlign::Bottom});
      out.add(Text{{gx - 8, ty + thumb / 2}, nm.substr(nl + 1), rls, Color{0.35, 0.35, 0.35, 1}, HAlign::Right, VAlign::Top});
    }
    for (int c = 0; c < C; ++c) {
      double tx = gx + c * (thumb + gap);
      const Mat& m = mats[r][c];
      if (cap != opt.captions.end() && heads[c] < static_cast<int>(cap->second.size()) && !cap->second[heads[c]].empty()) {
        // Right under the drawn matrix (a wide matrix is centred in its square box).
        const double drawn_h = m.size() == 0 ? thumb : thumb * m.rows() / std::max(m.rows(), m.cols());
        out.add(Text{{tx + thumb / 2, ty + (thumb + drawn_h) / 2 + 2}, cap->second[heads[c]], cs, kBlack, HAlign::Center,
                     VAlign::Top});
      }
      if (m.size() == 0) {
        out.add(Rect{tx, ty, thumb, thumb, Color{0.95, 0.95, 0.95, 1}, Color{0.8, 0.8, 0.8, 1}, 0.5});
        continue;
      }
      // Keep the matrix aspect inside the square box; one pixel per cell, nearest-neighbour scaled.
      const int Qn = static_cast<int>(m.rows()), Kn = static_cast<int>(m.cols());
      double s = thumb / std::max(Qn, Kn);
      double w = s * Kn, h = s * Qn;
      Mat unit = normalize(m, opt.scale, range);
      Image im;
      im.x = tx + (thumb - w) / 2, im.y = ty + (thumb - h) / 2, im.w = w, im.h = h;
      im.width = Kn, im.height = Qn;
      im.rgba.resize(static_cast<size_t>(Qn) * Kn * 4);
      for (int i = 0; i < Qn * Kn; ++i) {
        double t = unit.data()[i];
        std::array<std::uint8_t, 3> c8 = std::isnan(t) ? std::array<std::uint8_t, 3>{255, 0, 255} : cmap.at8(t);
        im.rgba[i * 4] = c8[0], im.rgba[i * 4 + 1] = c8[1], im.rgba[i * 4 + 2] = c8[2], im.rgba[i * 4 + 3] = 255;
      }
      out.add(Rect{im.x, im.y, im.w, im.h, kTransparent, Color{0.6, 0.6, 0.6, 1}, 0.5});
      out.add(std::move(im));
    }
  }
  double grid_h = R * pitch - gap;
  double right = gx + grid_w;
  double cb_h = std::max(grid_h, 120.0);
  // One quantity for every row (norm-based or mixing tensors only) names it; otherwise weights.
  std::string quantity = value_quantity(rows.front()->name);
  for (auto* t : rows)
    if (value_quantity(t->name) != quantity) quantity = "value";
  if (quantity.empty()) quantity = "weight";
  else if (quantity == "value" && opt.scale.norm != Normalization::PerRow) quantity = "value (mixed kinds)";
  std::string label = opt.scale.norm == Normalization::PerRow ? "row-normalized " + quantity
                      : quantity == "weight"                  ? "attention weight"
                                                              : quantity;
  right += 16 + add_colorbar(out, gx + grid_w + 16, gy, 12, cb_h, cmap, range, label, non_finite);
  double bottom = gy + std::max(grid_h, cb_h + (non_finite > 0 ? 24 : 0));
  out.width = std::ceil(right + margin);
  add_fitted_title(out, title, margin);
  out.height = std::ceil(bottom + margin);
  return out;
}

void render_grid(const AttentionRecord& record, const GridOptions& opt, const std::filesystem::path& out,
                 const PaintOptions& paint) {
  format_from_path(out);
  paint_to_file(layout_grid(record, opt), out, paint);
}

}  // namespace attnviz::render
