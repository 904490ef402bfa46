// `attnviz bench render`: figures per second for a 64x64 labelled heatmap (PNG, SVG) and a 4x8
// grid of 32x32 heads (PNG), encoded in memory (what the figure costs, not the disk); rates by CPU time.
#include "cli/commands.hpp"

#include <attnviz/error.hpp>
#include <attnviz/render/render.hpp>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>
#include <cmath>
#include <functional>
#include <random>

namespace attnviz::cli {

namespace {

using namespace attnviz::render;
using Clock = std::chrono::steady_clock;

// CPU seconds used by this process (less disturbed than wall time when other jobs share the cores).
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Rows of softmax(N(0, 1.5) logits + a diagonal bump), deterministic. [heads, n, n]
AttentionTensor random_attention(const std::string& name, int heads, int n, unsigned seed) {
  AttentionTensor t(name, heads, n, n, "tokens", "tokens");
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.5f);
  for (int h = 0; h < heads; ++h)
    for (int q = 0; q < n; ++q) {
      float sum = 0;
      for (int k = 0; k < n; ++k) sum += t.at(h, q, k) = std::exp(nd(rng) + (q == k ? 2.f : 0.f));
      for (int k = 0; k < n; ++k) t.at(h, q, k) /= sum;
    }
  return t;
}

struct Case {
  std::string name;
  std::function<std::string()> draw;  // returns the encoded figure
};

struct Result {
  std::string name;
  double figures_per_s = 0, ms_per_figure = 0;  // by CPU time
  double wall_figures_per_s = 0;
  int iterations = 0;
  size_t bytes = 0;
};

Result run(const Case& c, double seconds) {
  Result r;
  r.name = c.name;
  r.bytes = c.draw().size();  // warm-up (fonts, caches)
  auto t0 = Clock::now();
  double c0 = cpu_seconds(), elapsed = 0;
  do {
    r.bytes = c.draw().size();
    ++r.iterations;
    elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  } while (elapsed < seconds || r.iterations < 3);
  double cpu = cpu_seconds() - c0;
  r.figures_per_s = r.iterations / cpu;
  r.ms_per_figure = 1000 * cpu / r.iterations;
  r.wall_figures_per_s = r.iterations / elapsed;
  return r;
}

}  // namespace

void add_bench_render(CLI::App& parent) {
  auto* sub = parent.add_subcommand("render", "figures per second: 64x64 labelled heatmap (PNG, SVG), 4x8 grid of 32x32 heads (PNG)");
  set_example(sub, "attnviz bench render --seconds 2 --json");
  struct Opt {
    double seconds = 1.0;
    bool json = false;
    std::string only;
  };
  auto o = std::make_shared<Opt>();
  sub->add_option("--seconds", o->seconds, "time spent on each case")->check(CLI::Range(0.01, 600.0));
  sub->add_flag("--json", o->json, "print the results as JSON");
  sub->add_option("--case", o->only, "run only this case (heatmap64-png, heatmap64-png-small, heatmap64-svg, grid4x8-png)");
  sub->callback([o] {
    // The heatmap: 64 tokens on both axes, colorbar, title; values are not printed above 20x20.
    AttentionRecord heat;
    heat.tensors.push_back(random_attention("encoder.layer0.self", 1, 64, 1));
    for (int i = 0; i < 64; ++i) heat.tokens["tokens"].push_back(fmt::format("token{:02d}", i));
    // The grid: 4 layers x 8 heads of 32x32.
    AttentionRecord grid;
    for (int l = 0; l < 4; ++l) grid.tensors.push_back(random_attention(fmt::format("encoder.layer{}.self", l), 8, 32, 10 + l));
    PaintOptions paint;  // scale 2
    PaintOptions small = paint;
    small.small_png = true;
    std::vector<Case> cases = {
        {"heatmap64-png", [&] { return paint_to_bytes(layout_heatmap(select_matrix(heat, {}), {}), Format::Png, paint); }},
        {"heatmap64-png-small", [&] { return paint_to_bytes(layout_heatmap(select_matrix(heat, {}), {}), Format::Png, small); }},
        {"heatmap64-svg", [&] { return paint_to_bytes(layout_heatmap(select_matrix(heat, {}), {}), Format::Svg, paint); }},
        {"grid4x8-png", [&] { return paint_to_bytes(layout_grid(grid, {}), Format::Png, paint); }},
    };
    DrawList hl = layout_heatmap(select_matrix(heat, {}), {});
    nlohmann::json out = nlohmann::json::array();
    bool any = false;
    for (const auto& c : cases) {
      if (!o->only.empty() && c.name != o->only) continue;
      any = true;
      Result r = run(c, o->seconds);
      if (o->json) {
        nlohmann::json j = {{"case", r.name}, {"figures_per_s", r.figures_per_s}, {"ms_per_figure", r.ms_per_figure},
                            {"wall_figures_per_s", r.wall_figures_per_s}, {"iterations", r.iterations}, {"bytes", r.bytes}};
        if (c.name.rfind("heatmap64", 0) == 0) {
          j["width_pt"] = hl.width;
          j["height_pt"] = hl.height;
          j["scale"] = paint.scale;
        }
        out.push_back(j);
      } else {
        fmt::print("{:<20} {:8.1f} figures/s  {:7.2f} ms/figure CPU  ({:.1f}/s wall; {} figures, {} KiB each)\n", r.name,
                   r.figures_per_s, r.ms_per_figure, r.wall_figures_per_s, r.iterations, r.bytes / 1024);
      }
    }
    if (!any) throw UsageError("unknown --case '" + o->only + "' (known: heatmap64-png, heatmap64-png-small, heatmap64-svg, grid4x8-png)");
    if (o->json) fmt::print("{}\n", out.dump(2));
  });
}

}  // namespace attnviz::cli
