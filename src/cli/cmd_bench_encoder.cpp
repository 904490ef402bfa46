// `attnviz bench encoder`: a BERT-base-shaped encoder (12 layers, d 768, 12 heads, FFN 3072, random
// weights in memory) on T tokens, without and with keeping every layer x head (what `record encoder`
// writes), in ms and matmul GFLOP/s against the measured FP32 peak.
#include "cli/bench_common.hpp"
#include "cli/commands.hpp"
#include "engine/bench.hpp"

#include <attnviz/engine/ops.hpp>
#include <attnviz/engine/rng.hpp>
#include <attnviz/models/encoder.hpp>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>

namespace attnviz::cli {

namespace {

struct BenchEncoderOptions {
  std::vector<int> sizes = {128, 512};
  double min_seconds = 1.0;
  bool json = false;
};


void run(const BenchEncoderOptions& o) {
  const int threads = globals().threads > 0 ? globals().threads : nn::threads();
  const double peak = std::max(nn::fma_peak_gflops(threads, 0.2), nn::fma512_peak_gflops(threads, 0.2));
  models::EncoderConfig c;
  c.family = models::EncoderFamily::Bert;
  c.name = "BERT-base shape (random weights)";
  c.layers = 12; c.dim = 768; c.heads = 12; c.ffn = 3072; c.vocab = 30522; c.positions = 512; c.type_vocab = 2;
  models::EncoderModel m(c);
  m.init_random(1, 0.02f);
  nlohmann::json j;
  j["threads"] = threads;
  j["peak_gflops"] = peak;
  j["model"] = {{"layers", c.layers}, {"dim", c.dim}, {"heads", c.heads}, {"ffn", c.ffn}, {"parameters", m.params().count()}};
  if (!o.json) {
    fmt::print("{}: {} layers, d {}, {} heads, FFN {} ({:.1f} M parameters, F32), {} threads, FP32 peak {:.1f} GFLOP/s\n",
               c.name, c.layers, c.dim, c.heads, c.ffn, m.params().count() / 1e6, threads, peak);
    fmt::print("{:<26} {:>10} {:>12} {:>10}\n", "", "ms", "GFLOP/s", "% peak");
  }
  nn::Rng rng(3);
  for (int T : o.sizes) {
    if (T > c.positions) continue;
    std::vector<int> ids(T), types(T, 0);
    for (int& id : ids) id = rng.below(c.vocab);
    // 2 x multiply-adds: q, k, v, out (4 D^2), FFN (2 D F) per token; QK^T and PV (2 T^2 D) per layer.
    const double flops = 2.0 * c.layers * (static_cast<double>(T) * (4.0 * c.dim * c.dim + 2.0 * c.dim * c.ffn) +
                                           2.0 * static_cast<double>(T) * T * c.dim);
    auto row = [&](const std::string& what, double s) {
      const double gf = flops / s / 1e9;
      if (!o.json) fmt::print("{:<26} {:>10.1f} {:>12.1f} {:>9.0f}%\n", what, s * 1e3, gf, 100 * gf / peak);
      j["rows"].push_back({{"what", what}, {"T", T}, {"seconds", s}, {"gflops", gf}, {"peak_ratio", gf / peak}});
    };
    row(fmt::format("T={}", T), best_seconds([&] { m.forward_tokens(ids, types); }, o.min_seconds));
    row(fmt::format("T={} + record {} heads", T, c.layers * c.heads), best_seconds([&] {
          KeepAllWeights k;
          m.forward_tokens(ids, types, &k);
        }, o.min_seconds));
  }
  if (o.json) fmt::print("{}\n", j.dump(2));
}

}  // namespace

void add_bench_encoder(CLI::App& bench) {
  auto o = std::make_shared<BenchEncoderOptions>();
  auto* sub = bench.add_subcommand("encoder", "BERT-base-shaped encoder (random weights): forward with and without recording every head");
  sub->add_option("--sizes", o->sizes, "sequence lengths T (at most 512)")->delimiter(',');
  sub->add_option("--min-seconds", o->min_seconds, "repeat each case at least this long (best run kept)");
  sub->add_flag("--json", o->json, "machine-readable output");
  set_example(sub, "attnviz --threads 2 bench encoder --sizes 512");
  sub->callback([o] { run(*o); });
}

}  // namespace attnviz::cli
