// `attnviz render evolution REC -o OUT.{webp,gif,png,svg,pdf}`: a record of training snapshots
// (`train mnist --snapshot-every N --probe I`) as an animation or a static strip, one colour scale.
#include "cli/commands.hpp"
#include "cli/input_options.hpp"

#include <attnviz/analysis/saliency.hpp>
#include <attnviz/error.hpp>
#include <attnviz/record/import.hpp>
#include <attnviz/render/animation.hpp>
#include <attnviz/render/render.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <memory>

namespace attnviz::cli {

void add_render_evolution(CLI::App& parent) {
  struct Opts {
    std::string input, out, method = "cls";
    ImportOptions imp;
    render::EvolutionOptions ev;
    render::AnimationOptions anim;
    std::vector<int> frames;
    int strip_max = 8;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = parent.add_subcommand("evolution", "attention over training: every snapshot of a record (sample k = "
                                                 "snapshot k) as an animation (.webp, .gif) or a strip (.png, .svg, .pdf)");
  sub->add_option("INPUT", o->input, "snapshot record (train mnist --snapshot-every N --probe I)")->required();
  sub->add_option("-o,--out", o->out, "OUT.webp / OUT.gif (animation) or OUT.png / .svg / .pdf (strip)")->required();
  sub->add_option("-t,--tensor", o->ev.sel.tensor, "records without an image: tensor to draw (default: the first)");
  sub->add_option("--head", o->ev.sel.head, "head to draw")->check(non_negative_number());
  sub->add_flag("--mean-heads", o->ev.sel.mean_heads, "average over heads");
  sub->add_option("--method", o->method, "images: " + saliency_method_list() + " (cls = the last layer's CLS attention, "
                                         "mean over heads)");
  sub->add_option("--frames", o->frames, "snapshots to show, comma-separated (default: all in an animation, up to "
                                         "--strip-max evenly spaced in a strip)")->delimiter(',');
  sub->add_option("--strip-max", o->strip_max, "snapshots in a strip by default")->check(positive_number());
  sub->add_option("--frame-ms", o->anim.frame_ms, "animation: milliseconds per frame")->check(CLI::Range(20, 60000));
  sub->add_option("--scale", o->anim.scale, "animation: pixels per point")->check(CLI::Range(0.25, 8.0));
  sub->add_option("--cmap", o->ev.cmap, "colormap");
  set_example(sub, "attnviz render evolution vit.snapshots.safetensors -o evolution.webp\n"
                   "  attnviz render evolution vit.snapshots.safetensors --frames 0,5,10 -o strip.png");
  sub->callback([o] {
    render::AnimationFormat af;
    const bool animated = render::animation_format_from_path(o->out, af);
    if (!animated) render::format_from_path(o->out);   // UsageError naming the extensions
    if (!o->ev.cmap.empty()) render::Colormap::get(o->ev.cmap);
    auto recs = import_records(o->input, o->imp);
    std::vector<int> pick = o->frames;
    if (pick.empty()) {
      const int n = static_cast<int>(recs.size()), m = animated ? n : std::min(n, o->strip_max);
      for (int i = 0; i < m; ++i) pick.push_back(m == 1 ? 0 : static_cast<int>((static_cast<long>(i) * (n - 1)) / (m - 1)));
    }
    std::vector<AttentionRecord> chosen;
    for (int k : pick) {
      if (k < 0 || k >= static_cast<int>(recs.size()))
        throw UsageError(fmt::format("--frames {}: {} has {} snapshot(s)", k, o->input, recs.size()));
      chosen.push_back(recs[k]);
    }
    if (o->method == "cls") {
      o->ev.overlay.mean_heads = true;
    } else {
      SaliencyOptions so;
      so.method = parse_saliency_method(o->method);
      const std::string input = o->input;
      o->ev.map = [so, input](const AttentionRecord& r) { return patch_saliency(r, so, input); };
    }
    auto frames = render::evolution_frames(chosen, o->ev);
    if (animated) {
      auto info = render::write_animation(frames, o->out, o->anim);
      fmt::print("wrote {} ({} frames, {}x{} pixels)\n", o->out, info.frames, info.width, info.height);
      return;
    }
    std::vector<render::FigurePanel> panels;
    for (auto& f : frames) panels.push_back({std::move(f), ""});
    render::paint_to_file(render::compose(panels, {}), o->out);
    fmt::print("wrote {} ({} snapshots)\n", o->out, panels.size());
  });
}

}  // namespace attnviz::cli
