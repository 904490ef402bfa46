// Demo section "Samples": renders the hand-made records in samples/ (heatmap with gold markers,
// layer x head grid, token lines, a head-difference map, Chinese tokens) as PNG + SVG + PDF.
#include "cli/demo.hpp"

#include <attnviz/io/pharaoh.hpp>
#include <attnviz/record/record.hpp>
#include <attnviz/render/render.hpp>

#include <fmt/core.h>

#include <filesystem>

namespace attnviz::cli {

namespace {
namespace fs = std::filesystem;
using namespace attnviz::render;

// Writes one figure as stem.png/.svg/.pdf into the gallery and adds it to the page.
void add_figure(DemoContext& ctx, const DrawList& dl, const std::string& stem, const std::string& title,
                const std::string& caption) {
  PaintOptions po;
  po.small_png = true;  // gallery files are kept; size matters more than milliseconds here
  for (const char* ext : {".png", ".svg", ".pdf"}) paint_to_file(dl, ctx.out / (stem + ext), po);
  ctx.items.push_back({"Samples", title, caption, stem + ".png", {stem + ".svg", stem + ".pdf"}});
}
}  // namespace

void demo_samples(DemoContext& ctx) {
  fs::path dir = fs::path(ATTNVIZ_SOURCE_DIR) / "samples";
  if (!fs::exists(dir / "alignment_6x7.safetensors")) dir = "samples";
  if (!fs::exists(dir / "alignment_6x7.safetensors")) {
    ctx.notes.push_back("samples: samples/ folder not found, section skipped");
    return;
  }
  AttentionRecord rec = load_record(dir / "alignment_6x7.safetensors");

  // 1. Cross-attention with the gold alignment over it.
  HeatmapOptions h;
  h.markers.gold = read_pharaoh(dir / "alignment_6x7.gold").at(0);
  add_figure(ctx, layout_heatmap(select_matrix(rec, {"decoder.layer0.cross", 0, false}), h), "samples_heatmap",
             "Cross-attention with gold alignment",
             "English → German, head 0 of the decoder's cross-attention (rows: German target tokens, columns: "
             "English source tokens). Red squares are sure gold links, the dashed square a possible link "
             "(\"did\" is part of \"aß\"); the negation \"not\" moves to the end as \"nicht\".");

  // 2. Every layer and head on one colour scale.
  add_figure(ctx, layout_grid(rec, {}), "samples_grid", "All layers × heads",
             "Each thumbnail is one head; all share the colour scale at the right. The encoder's heads look at "
             "the previous, same or next token (diagonals), one head of layer 1 spreads its attention widely.");

  // 3. Token lines, one colour per head.
  add_figure(ctx, layout_lines(rec, "decoder.layer0.cross", {}), "samples_lines", "Token lines",
             "Each target token (left) is joined to the source tokens (right) it attends to; line width and "
             "opacity follow the weight. Head 0 (blue) aligns sharply, head 1 (orange) is diffuse.");

  // 4. Where two heads differ, on the diverging map centred at zero.
  const AttentionTensor& cross = select_tensor(rec, "decoder.layer0.cross");
  LabelledMatrix diff = select_matrix(rec, {"decoder.layer0.cross", 0, false});
  diff.values = cross.head(0) - cross.head(1);
  diff.title = "decoder.layer0.cross · head 0 − head 1";
  double m = diff.values.cwiseAbs().maxCoeff();
  HeatmapOptions d;
  d.cmap = "coolwarm";
  d.colorbar_label = "weight difference";
  d.scale.vmin = -m;
  d.scale.vmax = m;
  add_figure(ctx, layout_heatmap(diff, d), "samples_difference", "Difference between two heads",
             "Head 0 minus head 1 on the diverging colormap (red: head 0 attends more, blue: head 1 attends "
             "more, white: equal).");

  // 5. Chinese tokens (UTF-8 through Pango with CJK font fallback).
  if (fs::exists(dir / "chinese_4x4.safetensors")) {
    AttentionRecord zh = load_record(dir / "chinese_4x4.safetensors");
    add_figure(ctx, layout_heatmap(select_matrix(zh, {}), {}), "samples_chinese", "Chinese source tokens",
               "Chinese → English cross-attention: the CJK tokens on the source axis render through Pango's "
               "font fallback (Noto CJK).");
  }
  ctx.notes.push_back(fmt::format("samples: {} figures rendered from {}", 5, dir.string()));
}

}  // namespace attnviz::cli
