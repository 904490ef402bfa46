// `attnviz stats INPUT...` / `stats --model M --inputs N`: per layer x head statistics over many
// records, or over a model run on N inputs of its own data (entropy, sink rate, attended distance,
// top-k mass) as a table, --json, and a figure of one heatmap per statistic.
#include "cli/commands.hpp"
#include "cli/input_options.hpp"
#include "cli/model_records.hpp"

#include <attnviz/error.hpp>
#include <attnviz/record/import.hpp>
#include <attnviz/record/stats.hpp>
#include <attnviz/render/render.hpp>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <memory>
#include <tuple>

namespace attnviz::cli {

namespace {

using namespace attnviz::render;

// One statistic as a [tensors, heads] matrix (NaN where a tensor has fewer heads).
LabelledMatrix stat_matrix(const HeadStatsTable& t, double HeadStat::*field, const std::string& title) {
  std::vector<std::string> names;
  int heads = 0;
  for (const auto& s : t.stats) {
    if (names.empty() || names.back() != s.tensor) names.push_back(s.tensor);
    heads = std::max(heads, s.head + 1);
  }
  LabelledMatrix m;
  m.values = Mat::Constant(static_cast<int>(names.size()), heads, std::numeric_limits<float>::quiet_NaN());
  for (const auto& s : t.stats) {
    const int r = static_cast<int>(std::find(names.begin(), names.end(), s.tensor) - names.begin());
    m.values(r, s.head) = static_cast<float>(s.*field);
  }
  m.row_labels = names;
  for (int h = 0; h < heads; ++h) m.col_labels.push_back("head " + std::to_string(h));
  m.title = title;
  return m;
}

}  // namespace

void add_stats(CLI::App& app) {
  struct Opts {
    std::vector<std::string> inputs;
    std::string out, cmap = "viridis";
    HeadStatsOptions stats;
    ImportOptions imp;
    bool json = false;
    ModelInputs run;                 // --model
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("stats", "per layer x head statistics over many records: entropy, attention to the "
                                          "first token (sink), attended distance, top-k mass");
  sub->add_option("INPUT", o->inputs, "record files (every sample of each) or importable attention files");
  sub->add_option("--model", o->run.model, "instead of records: run this model on --inputs N inputs of its own data "
                                           "(MNIST test images, held-out pairs or texts, LM continuations)");
  sub->add_option("--inputs", o->run.inputs, "--model: how many inputs (default 16)")->check(positive_number());
  sub->add_option("--steps", o->run.steps, "--model, LMs: tokens generated after BOS for each input (default 32)")
      ->check(positive_number());
  sub->add_option("--corpus", o->run.corpus, "--model, translators: held-out TSV pairs instead of the built-in generator's");
  sub->add_option("--top-k", o->stats.top_k, "k of the top-k mass")->check(positive_number());
  sub->add_option("--tensors", o->stats.tensors, "only tensors whose name contains this");
  sub->add_option("-o,--out", o->out, "also write a figure (one heatmap per statistic, layers x heads): .png, .svg or .pdf");
  sub->add_option("--cmap", o->cmap, "colormap of the figure");
  sub->add_flag("--json", o->json, "print the table as JSON");
  add_import_options(sub, o->imp);
  set_example(sub, "attnviz stats mnist_record.safetensors --top-k 3 -o stats.png\n"
                   "  attnviz stats run1.safetensors run2.safetensors --json\n"
                   "  attnviz stats --model models/vit.safetensors --inputs 100 -o vit_stats.png");
  sub->callback([o, sub] {
    if (o->inputs.empty() == o->run.model.empty()) throw UsageError("stats: give record files or --model (not both)");
    for (const char* opt : {"--inputs", "--steps", "--corpus"})
      if (o->run.model.empty() && sub->count(opt)) throw UsageError(std::string("stats: ") + opt + " goes with --model");
    if (!o->out.empty()) format_from_path(o->out), Colormap::get(o->cmap);
    std::vector<AttentionRecord> recs;
    std::string where;
    if (!o->run.model.empty()) {
      ModelRecords m = records_from_model(o->run);
      recs = std::move(m.records);
      o->stats.sources = std::move(m.sources);
      where = o->run.model + ": " + m.description;
    }
    for (const auto& in : o->inputs) {
      auto rs = import_records(in, o->imp);
      for (size_t k = 0; k < rs.size(); ++k) {
        o->stats.sources.push_back(rs.size() > 1 ? fmt::format("{} (sample {})", in, k) : in);
        recs.push_back(std::move(rs[k]));
      }
    }
    if (where.empty()) where = o->inputs.size() == 1 ? o->inputs.front() : fmt::format("{} files", o->inputs.size());
    HeadStatsTable t = head_stats(recs, o->stats, where);
    if (o->json) {
      nlohmann::json j = {{"samples", t.samples}, {"top_k", t.top_k}, {"source", where}, {"heads", nlohmann::json::array()}};
      for (const auto& s : t.stats)
        j["heads"].push_back({{"tensor", s.tensor}, {"layer", s.layer}, {"head", s.head}, {"entropy", s.entropy},
                              {"sink", s.sink}, {"distance", s.distance}, {"top_k_mass", s.top_k}, {"rows", s.rows}});
      fmt::print("{}\n", j.dump(2));
    } else {
      fmt::print("{} sample(s), {}; means over every query row\n", t.samples, where);
      fmt::print("{:<28} {:>5} {:>4}  {:>8} {:>6} {:>8} {:>6}\n", "tensor", "layer", "head", "entropy", "sink", "distance",
                 fmt::format("top{}", t.top_k));
      for (const auto& s : t.stats)
        fmt::print("{:<28} {:>5} {:>4}  {:>8.3f} {:>6.3f} {:>8.2f} {:>6.3f}\n", s.tensor, s.layer, s.head, s.entropy, s.sink,
                   s.distance, s.top_k);
    }
    if (o->out.empty()) return;
    HeatmapOptions h;
    h.cmap = o->cmap;
    h.title = "-";
    h.values_max_size = 12;
    std::vector<FigurePanel> panels;
    const std::tuple<double HeadStat::*, std::string, std::string> what[] = {
        {&HeadStat::entropy, "entropy (nats)", "nats"},
        {&HeadStat::sink, "attention to the first token", "weight"},
        {&HeadStat::distance, "attended distance (positions)", "positions"},
        {&HeadStat::top_k, fmt::format("top-{} mass", t.top_k), "mass"}};
    for (const auto& [field, name, unit] : what) {
      h.colorbar_label = unit;
      panels.push_back({layout_heatmap(stat_matrix(t, field, name), h), name});
    }
    paint_to_file(compose(panels, {.columns = 2, .title = fmt::format("attention statistics · {} sample(s)", t.samples)}),
                  o->out);
    std::fflush(stdout);   // the JSON first, then the note (on stderr with --json)
    fmt::print(o->json ? stderr : stdout, "wrote {}\n", o->out);
  });
}

}  // namespace attnviz::cli
