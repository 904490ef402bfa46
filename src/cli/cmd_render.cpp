// `attnviz render heatmap|grid|lines|overlay|text INPUT -o OUT.{png,svg,pdf}`: parses options,
// loads the record and calls the renderer.
#include "cli/commands.hpp"
#include "cli/input_options.hpp"
#include "cli/render_batch.hpp"

#include <cmath>
#include <attnviz/error.hpp>
#include <attnviz/record/import.hpp>
#include <attnviz/io/pharaoh.hpp>
#include <attnviz/io/printable.hpp>
#include <attnviz/analysis/alignment.hpp>
#include <attnviz/render/render.hpp>
#include <attnviz/analysis/saliency.hpp>

#include <fmt/core.h>

#include <memory>

namespace attnviz::cli {

namespace {

using namespace attnviz::render;

// Options shared by every plot kind.
struct Common {
  std::string input, out;
  BatchInputs batch;   // INPUT..., --batch-file FILE, --format (render_batch.hpp)
  ImportOptions import;
  std::string cmap = "viridis", norm = "global";
  double vmin = 0, vmax = 0;
  CLI::Option* vmin_opt = nullptr;
  CLI::Option* vmax_opt = nullptr;
  PaintOptions paint;

  ScaleOptions scale() const {
    ScaleOptions s;
    s.norm = parse_normalization(norm);
    if (vmin_opt && vmin_opt->count()) s.vmin = vmin;
    if (vmax_opt && vmax_opt->count()) s.vmax = vmax;
    return s;
  }

  // A plot's options with the colour choices filled in; checks, in this order, the output's
  // extension, the colormap name and the normalization name.
  template <class PlotOptions>
  PlotOptions with_colours(PlotOptions p) const {
    format_from_path(out);
    p.cmap = cmap;
    Colormap::get(p.cmap);
    p.scale = scale();
    return p;
  }
};

void add_common(CLI::App* sub, Common& c, const std::string& default_cmap) {
  c.cmap = default_cmap;
  add_batch_inputs(sub, c.batch);
  sub->add_option("-o,--out", c.out, "output file (the format follows the extension: .png, .svg or .pdf), or a "
                                     "folder DIR/ for several inputs");
  add_import_options(sub, c.import);
  std::string names;
  for (const auto& n : Colormap::names()) names += (names.empty() ? "" : ", ") + n;
  sub->add_option("--cmap", c.cmap, "colormap: " + names);
  sub->add_option("--norm", c.norm, "colour normalization: global (min..max of what is shown), row (each row "
                                    "to its own min..max), none (raw weights on 0..1)");
  // NaN/Inf colour-scale ends are a usage error (exit 1), not a cairo failure later.
  c.vmin_opt = sub->add_option("--vmin", c.vmin, "value at the bottom of the colour scale")->check(finite_in());
  c.vmax_opt = sub->add_option("--vmax", c.vmax, "value at the top of the colour scale")->check(finite_in());
  sub->add_option("--scale", c.paint.scale, "PNG pixels per point (2 = crisp on high-DPI screens)")->check(CLI::Range(0.1, 16.0));
  sub->add_flag("--small-png", c.paint.small_png, "compress the PNG harder (about 3x smaller, a little slower)");
  sub->add_option("--dpi", c.paint.dpi, "PNG resolution in dots per inch (overrides --scale; 144 = --scale 2)")->check(CLI::Range(7.2, 1152.0));
}

// -t/--tensor, --head and --mean-heads into a Selection or OverlaySelection.
template <class HeadSelection>
void add_head_selection(CLI::App* sub, HeadSelection& sel, const std::string& default_tensor) {
  sub->add_option("-t,--tensor", sel.tensor, "tensor name (default: " + default_tensor + ")");
  sub->add_option("--head", sel.head, "head index")->check(non_negative_number());
  sub->add_flag("--mean-heads", sel.mean_heads, "average over all heads");
}

void report(const std::string& out) {
  if (!in_batch()) fmt::print("wrote {}\n", out);
}

// The Pharaoh line for this sample: the only line, or line `sample` of a multi-line file.
Alignment pick_alignment(const std::string& path, int line, const PharaohOptions& opt) {
  std::vector<std::string> hints;
  Alignment a = read_pharaoh_sample(path, line, opt, &hints);
  for (const auto& h : hints) fmt::print(stderr, "warning: {}\n", h);
  return a;
}

void add_heatmap(CLI::App& parent) {
  auto* sub = parent.add_subcommand("heatmap", "one head (or the mean over heads) of one tensor as a labelled heatmap");
  set_example(sub, "attnviz render heatmap samples/alignment_6x7.safetensors --tensor decoder.layer0.cross "
                   "--gold samples/alignment_6x7.gold -o heat.png");
  struct Opt {
    Common c;
    Selection sel;
    HeatmapOptions h;
    std::string gold, pred;
    int align_line = -1;
    bool no_values = false, no_colorbar = false, no_labels = false;
    bool one_indexed = false, gold_one = false, pred_one = false, gold_all_sure = false;
  };
  auto o = std::make_shared<Opt>();
  add_common(sub, o->c, "viridis");
  add_head_selection(sub, o->sel, "the first tensor");
  sub->add_option("--values-max", o->h.values_max_size, "print cell values when both sides are at most this many cells");
  sub->add_flag("--no-values", o->no_values, "never print cell values");
  sub->add_flag("--no-colorbar", o->no_colorbar, "leave out the colorbar");
  sub->add_flag("--no-labels", o->no_labels, "leave out the token labels");
  sub->add_option("--title", o->h.title, "figure title (default: tensor, layer and head; '-' = none)");
  sub->add_option("--cell", o->h.cell, "cell size in points (default: automatic)")->check(CLI::Range(1.0, 200.0));
  sub->add_option("--gold", o->gold, "Pharaoh file with gold links (i-j sure, i?j possible; i = source/key, j = target/query)");
  sub->add_option("--pred", o->pred, "Pharaoh file with predicted links, drawn as dots");
  sub->add_option("--align-line", o->align_line, "line of the Pharaoh files to use (default: the only line, else --sample)");
  sub->add_flag("--one-indexed", o->one_indexed, "both Pharaoh files are 1-based");
  sub->add_flag("--gold-one-indexed", o->gold_one, "the --gold file is 1-based");
  sub->add_flag("--gold-all-sure", o->gold_all_sure, "draw every --gold link as sure, possible ones too");
  sub->add_flag("--pred-one-indexed", o->pred_one, "the --pred file is 1-based");
  sub->callback([o] { for_each_input(o, [](const std::shared_ptr<Opt>& o) {
    HeatmapOptions h = o->c.with_colours(o->h);
    if (o->no_values) h.values_max_size = 0;
    h.colorbar = !o->no_colorbar;
    h.labels = !o->no_labels;
    int line = o->align_line >= 0 ? o->align_line : o->c.import.sample;
    const PharaohOptions gph{.one_indexed = o->one_indexed || o->gold_one,
                             .flag = o->one_indexed ? "--one-indexed" : "--gold-one-indexed",
                             .all_sure = o->gold_all_sure};
    const PharaohOptions pph{.one_indexed = o->one_indexed || o->pred_one,
                             .flag = o->one_indexed ? "--one-indexed" : "--pred-one-indexed"};
    if (!o->gold.empty()) h.markers.gold = pick_alignment(o->gold, line, gph);
    if (!o->pred.empty()) h.markers.predicted = pick_alignment(o->pred, line, pph);
    AttentionRecord rec = import_record(o->c.input, o->c.import);
    // Links past the drawn matrix (a 1-based file read 0-based) are refused, naming the flag.
    const AttentionTensor* t = o->sel.tensor.empty() ? (rec.tensors.empty() ? nullptr : &rec.tensors.front())
                                                     : rec.find(o->sel.tensor);
    if (t) {
      const std::vector<PairSize> size = {{t->keys, t->queries}};
      if (!o->gold.empty()) check_alignments_fit({*h.markers.gold}, size, o->gold, gph);
      if (!o->pred.empty()) check_alignments_fit({*h.markers.predicted}, size, o->pred, pph);
    }
    render_heatmap(rec, o->sel, h, o->c.out, o->c.paint);
    report(o->c.out);
  }); });
}

void add_grid(CLI::App& parent) {
  auto* sub = parent.add_subcommand("grid", "every layer x head as thumbnails on one shared colour scale");
  set_example(sub, "attnviz render grid samples/alignment_6x7.safetensors --tensors encoder -o grid.png");
  struct Opt {
    Common c;
    GridOptions g;
    std::string aer_gold, align_method = "argmax";
    bool gold_one = false, gold_all_sure = false;
  };
  auto o = std::make_shared<Opt>();
  add_common(sub, o->c, "viridis");
  sub->add_option("--annotate-aer", o->aer_gold, "Pharaoh gold file: write each cross-attention head's AER under its "
                                                 "thumbnail (line --sample of a multi-line file)");
  sub->add_option("--align-method", o->align_method, "alignment extraction for --annotate-aer: argmax | itermax | "
                                                     "intersect | threshold")
      ->check(CLI::IsMember({"argmax", "itermax", "intersect", "threshold"}));
  sub->add_flag("--gold-one-indexed", o->gold_one, "the --annotate-aer file is 1-based");
  sub->add_flag("--gold-all-sure", o->gold_all_sure, "count every --annotate-aer link as sure, possible ones too");
  sub->add_option("--tensors", o->g.tensors, "only tensors whose name contains this (e.g. encoder, cross)");
  sub->add_option("--layers", o->g.layers, "layer indices to show, comma-separated (default: all)")->delimiter(',');
  sub->add_option("--heads", o->g.heads, "head indices to show, comma-separated (default: all)")->delimiter(',');
  sub->add_option("--thumb", o->g.thumb, "thumbnail size in points (default: automatic)")->check(CLI::Range(8.0, 400.0));
  sub->add_option("--title", o->g.title, "figure title ('-' = none)");
  sub->callback([o] { for_each_input(o, [](const std::shared_ptr<Opt>& o) {
    GridOptions g = o->c.with_colours(o->g);
    AttentionRecord rec = import_record(o->c.input, o->c.import);
    if (!o->aer_gold.empty()) {
      const PharaohOptions gph{.one_indexed = o->gold_one, .flag = "--gold-one-indexed", .all_sure = o->gold_all_sure};
      RankHeadsOptions ro;
      ro.tensors = g.tensors;
      ro.align.method = parse_align_method(o->align_method);
      ro.input_path = o->c.input, ro.gold_path = o->aer_gold, ro.gold_format = gph;
      HeadRanking r = rank_heads({rec}, {pick_alignment(o->aer_gold, o->c.import.sample, gph)}, ro);
      for (const auto& h : r.heads) {
        auto& caps = g.captions[h.tensor];
        if (static_cast<int>(caps.size()) <= h.head) caps.resize(h.head + 1);
        caps[h.head] = fmt::format("AER {:.2f}", h.score.aer());
      }
    }
    render_grid(rec, g, o->c.out, o->c.paint);
    report(o->c.out);
  }); });
}

void add_lines(CLI::App& parent) {
  auto* sub = parent.add_subcommand("lines", "bipartite token view: one line per (query, key), width and opacity by weight");
  set_example(sub, "attnviz render lines samples/alignment_6x7.safetensors --tensor decoder.layer0.cross -o lines.svg");
  struct Opt {
    Common c;
    std::string tensor;
    LinesOptions l;
  };
  auto o = std::make_shared<Opt>();
  add_common(sub, o->c, "viridis");
  sub->add_option("-t,--tensor", o->tensor, "tensor name (default: the first tensor)");
  sub->add_option("--heads", o->l.heads, "heads to draw, comma-separated, one colour each (default: all)")->delimiter(',');
  sub->add_flag("--mean-heads", o->l.mean_heads, "one set of lines for the mean over heads");
  sub->add_option("--threshold", o->l.threshold, "hide lines whose weight is below this fraction of the largest")
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--max-width", o->l.max_width, "line width of the largest weight (points)")->check(CLI::Range(0.1, 40.0));
  sub->add_option("--query", o->l.query, "only this query token's lines (index; -1 = all): readable on long causal records")
      ->check(CLI::Range(-1, 1 << 30));
  sub->add_option("--title", o->l.title, "figure title ('-' = none)");
  sub->callback([o] { for_each_input(o, [](const std::shared_ptr<Opt>& o) {
    format_from_path(o->c.out);
    AttentionRecord rec = import_record(o->c.input, o->c.import);
    render_lines(rec, o->tensor, o->l, o->c.out, o->c.paint);
    report(o->c.out);
  }); });
}

void add_overlay(CLI::App& parent) {
  auto* sub = parent.add_subcommand("overlay", "attention over the record's image: one image, a strip of heads, or a grid of samples");
  set_example(sub, "attnviz render overlay mnist_record.safetensors --all --mean-heads -o digits.png");
  struct Opt {
    Common c;
    OverlaySelection sel;
    OverlayOptions ov;
    std::string method = "cls";
    bool all = false, strip = false;
    int limit = 64;
  };
  auto o = std::make_shared<Opt>();
  add_common(sub, o->c, "inferno");
  add_head_selection(sub, o->sel, "the last self-attention layer");
  sub->add_option("--query", o->sel.query, "query token whose attention is shown (0 = CLS)")->check(non_negative_number());
  sub->add_option("--method", o->method, "which map: " + saliency_method_list() + " (cls = the chosen query's attention in "
                                         "one layer; chefer = LRP relevance x gradient, Chefer et al. 2021)");
  sub->add_flag("--all", o->all, "one panel per sample of the file, with true/predicted labels");
  sub->add_option("--limit", o->limit, "at most this many samples with --all")->check(positive_number());
  sub->add_flag("--strip", o->strip, "one image: [image | each head | mean of heads] side by side");
  sub->add_option("--alpha", o->ov.alpha, "opacity of the attention colours over the image")->check(CLI::Range(0.0, 1.0));
  sub->add_option("--columns", o->ov.columns, "panels per row (default: automatic)")->check(non_negative_number());
  sub->add_option("--panel", o->ov.panel, "panel size in points")->check(CLI::Range(16.0, 1000.0));
  sub->add_flag("--shared-scale", o->ov.shared_scale, "one colour range over all panels");
  sub->add_flag("--colorbar", o->ov.colorbar, "add a colorbar (use with --shared-scale)");
  sub->add_option("--title", o->ov.title, "figure title");
  sub->callback([o] { for_each_input(o, [](const std::shared_ptr<Opt>& o) {
    OverlayOptions ov = o->c.with_colours(o->ov);
    OverlayMapFn fn;
    if (o->method != "cls") {
      SaliencyOptions so;
      so.method = parse_saliency_method(o->method);
      so.query = o->sel.query;
      std::string input = o->c.input;
      fn = [so, input](const AttentionRecord& r) { return patch_saliency(r, so, input); };
    }
    std::vector<OverlayPanel> panels;
    if (o->all) {
      auto recs = import_records(o->c.input, o->c.import);
      if (static_cast<int>(recs.size()) > o->limit) recs.resize(o->limit);
      panels = overlay_panels(recs, o->sel, fn);
    } else {
      AttentionRecord rec = import_record(o->c.input, o->c.import);
      if (o->strip) {
        panels = overlay_head_strip(rec, o->sel);
        if (fn) panels.push_back(OverlayPanel{*rec.image, fn(rec), o->method, kBlack});
      } else {
        panels = overlay_panels({rec}, o->sel, fn);
      }
    }
    render_overlay(panels, ov, o->c.out, o->c.paint);
    report(o->c.out);
  }); });
}

void add_diff(CLI::App& parent) {
  auto* sub = parent.add_subcommand("diff", "A - B of two records (or two tensors/heads of one) on a diverging map with "
                                            "a symmetric scale; prints the largest changes");
  set_example(sub, "attnviz render diff before.safetensors after.safetensors --tensor decoder.layer0.cross --mean-heads -o diff.png\n"
                   "  attnviz render diff rec.safetensors --tensor decoder.layer1.cross --head 0 --head-b 3 -o heads.svg");
  struct Opt {
    Common c;
    Selection a, b;
    std::string tensor_b;
    int head_b = -1, top = 10;
    bool mean_b = false;
    HeatmapOptions h;
  };
  auto o = std::make_shared<Opt>();
  add_common(sub, o->c, "coolwarm");
  add_head_selection(sub, o->a, "the first tensor");
  sub->add_option("--tensor-b", o->tensor_b, "B's tensor (default: the same as A's)");
  sub->add_option("--head-b", o->head_b, "B's head (default: the same as A's)")->check(non_negative_number());
  sub->add_flag("--mean-heads-b", o->mean_b, "B is the mean over heads");
  sub->add_option("--top", o->top, "print this many largest changes (0 = none)")->check(non_negative_number());
  sub->add_option("--title", o->h.title, "figure title (default: 'A − B' named by tensor and head; '-' = none)");
  sub->callback([o] {
    const auto& in = o->c.batch.inputs;
    if (in.empty() || in.size() > 2) throw UsageError("render diff takes one or two inputs: A [B]");
    if (!o->c.batch.file.empty()) throw UsageError("render diff does not take --batch-file");
    if (o->c.out.empty()) throw UsageError("render diff needs -o OUT.{png,svg,pdf}");
    HeatmapOptions h = o->c.with_colours(o->h);
    AttentionRecord ra = import_record(in.front(), o->c.import);
    AttentionRecord rb = in.size() == 2 ? import_record(in.back(), o->c.import) : ra;
    Selection sb = o->a;
    if (!o->tensor_b.empty()) sb.tensor = o->tensor_b;
    if (o->head_b >= 0) sb.head = o->head_b, sb.mean_heads = false;
    if (o->mean_b) sb.mean_heads = true;
    if (sb.tensor.empty()) sb.tensor = select_tensor(rb, "").name;
    Selection sa = o->a;
    if (sa.tensor.empty()) sa.tensor = select_tensor(ra, "").name;
    if (in.size() == 1 && sa.tensor == sb.tensor && sa.mean_heads == sb.mean_heads && (sa.mean_heads || sa.head == sb.head))
      throw UsageError("A and B are the same matrix: give a second input, or --tensor-b / --head-b / --mean-heads-b");
    LabelledMatrix ma = select_matrix(ra, sa), mb = select_matrix(rb, sb);
    if (in.size() == 2) ma.title = in.front() + ": " + ma.title, mb.title = in.back() + ": " + mb.title;
    render_diff(ma, mb, h, o->c.out, o->c.paint);
    const auto changes = largest_changes(ma.values, mb.values, o->top);
    if (!changes.empty()) fmt::print("largest changes, A − B (query -> key: A, B, difference):\n");
    auto label = [](const std::vector<std::string>& l, int i) {
      // Index labels (a record without tokens) are not repeated.
      if (i >= static_cast<int>(l.size()) || l[i] == std::to_string(i)) return std::to_string(i);
      return fmt::format("{} '{}'", i, printable_for_terminal(l[i]));
    };
    for (const auto& ch : changes)
      fmt::print("  {} -> {}: {:.4f}, {:.4f}, {:+.4f}\n", label(ma.row_labels, ch.query), label(ma.col_labels, ch.key), ch.a,
                 ch.b, ch.a - ch.b);
    report(o->c.out);
  });
}

}  // namespace

void add_render_html(CLI::App& render);       // cmd_render_html.cpp (interactive page)
void add_render_evolution(CLI::App& render);  // cmd_render_evolution.cpp (attention over training)

void add_render(CLI::App& app) {
  add_group(app, "render", "draw a record: heatmap | grid | lines | overlay | diff | text | html | evolution",
            "attnviz render heatmap samples/alignment_6x7.safetensors -o heat.png",
            {add_heatmap, add_grid, add_lines, add_overlay, add_diff, add_render_text, add_render_html,
             add_render_evolution});
}

}  // namespace attnviz::cli
