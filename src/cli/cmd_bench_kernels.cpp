// `attnviz bench kernels`: attention kernel throughput vs the measured FMA peak, blocked vs naive,
// 1 vs all threads, peak extra memory, and the model shapes' forward/backward times.
#include "cli/commands.hpp"

#include <attnviz/error.hpp>
#include "engine/bench.hpp"
#include <attnviz/engine/attention.hpp>
#include <attnviz/engine/ops.hpp>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>

namespace attnviz::cli {

namespace {
struct BenchKernelsOptions {
  std::vector<int> sizes = {128, 512, 1024, 2048, 4096, 8192};
  int d = 64, heads = 8;
  bool json = false, quick = false, no_models = false, memory_only = false;
  int naive_max = 2048;
  std::string isa;   // empty: ATTNVIZ_ISA or the widest the CPU has
};

void run(const BenchKernelsOptions& o) {
  if (!o.isa.empty()) nn::set_kernel_isa(o.isa);
  const std::string isa = nn::kernel_isa();
  const int all = globals().threads > 0 ? globals().threads : nn::threads();
  nn::KernelBenchOptions ko;
  ko.sizes = o.sizes;
  if (o.quick) ko.sizes.erase(std::remove_if(ko.sizes.begin(), ko.sizes.end(), [](int n) { return n > 1024; }), ko.sizes.end());
  for (int n : ko.sizes)
    if (n <= 0 || n > 65536) throw UsageError("--sizes: N must be in 1..65536, got " + std::to_string(n));
  ko.d = o.d;
  ko.heads = o.heads;
  ko.threads = all;
  ko.naive_max_n = o.naive_max;
  ko.timings = !o.memory_only;
  ko.min_seconds = o.quick ? 0.05 : 0.25;
  const double peak1 = nn::fma_peak_gflops(1, o.quick ? 0.05 : 0.2);
  const double peak_all = nn::fma_peak_gflops(all, o.quick ? 0.05 : 0.2);
  // With an AVX-512 build the kernel runs on 512-bit vectors, so its honest ceiling is the
  // AVX-512 loop's; both ratios are printed.
  const double peak512_1 = nn::fma512_peak_gflops(1, o.quick ? 0.05 : 0.2);
  const double peak512_all = nn::fma512_peak_gflops(all, o.quick ? 0.05 : 0.2);
  // The ceiling of the ISA the dispatch chose (what the kernels' percentages are measured against).
  const double isa_peak1 = nn::isa_peak_gflops(isa, 1, o.quick ? 0.05 : 0.2);
  const double isa_peak_all = nn::isa_peak_gflops(isa, all, o.quick ? 0.05 : 0.2);
  const std::string cpu = nn::cpu_model();
  if (!o.json) {
    fmt::print("CPU: {} ({}); kernel ISA: {} (chosen at run time; --isa or ATTNVIZ_ISA=avx2|sse4|portable forces a narrower one)\n",
               cpu, nn::cpu_isa_flags(), isa);
    fmt::print("matrix products: {}\n", nn::gemm_backend());
    fmt::print("FP32 peak of {} (measured): {:.1f} GFLOP/s on 1 thread, {:.1f} GFLOP/s on {} threads\n", isa, isa_peak1,
               isa_peak_all, all);
    fmt::print("FP32 FMA peak (AVX2 micro-kernel): {:.1f} GFLOP/s on 1 thread, {:.1f} GFLOP/s on {} threads\n",
               peak1, peak_all, all);
    if (peak512_all > 0)
      fmt::print("FP32 FMA peak (AVX-512 micro-kernel): {:.1f} GFLOP/s on 1 thread, "
                 "{:.1f} GFLOP/s on {} threads\n",
                 peak512_1, peak512_all, all);
    fmt::print("attention forward, d={}, H={}, batch 1; GFLOP = 4*N*N*d*H\n", o.d, o.heads);
    fmt::print("{:>6} {:>10} {:>10} {:>9} {:>8} {:>8} {:>8} {:>7} {:>7} {:>10} {:>9} {:>9} {:>10}\n", "N", "1 thr ms",
               fmt::format("{} thr ms", all), "GFLOP/s", "% " + isa, "% AVX2", "% AVX512", "1->all", "naive", "naive/blk",
               "extra MiB", "+weights", "workspace");
  }
  auto rows = nn::bench_kernels(ko);
  nlohmann::json j;
  j["peak_gflops_1_thread"] = peak1;
  j["peak_gflops_all_threads"] = peak_all;
  j["peak512_gflops_1_thread"] = peak512_1;
  j["peak512_gflops_all_threads"] = peak512_all;
  j["cpu_model"] = cpu;
  j["isa"] = isa;
  j["gemm_backend"] = nn::gemm_backend();
  j["isa_peak_gflops_1_thread"] = isa_peak1;
  j["isa_peak_gflops_all_threads"] = isa_peak_all;
  j["threads"] = all;
  j["d"] = o.d;
  j["heads"] = o.heads;
  j["kernels"] = nlohmann::json::array();
  // --memory-only has no timings: print "-" rather than zeros that read like measurements.
  const bool timed = ko.timings;
  auto num = [timed](double v, const char* f) { return timed ? fmt::format(fmt::runtime(f), v) : std::string("-"); };
  for (const auto& r : rows) {
    const double pct = peak_all > 0 ? 100.0 * r.gflops_all / peak_all : 0;
    const std::string pct512 =
        timed && peak512_all > 0 ? fmt::format("{:.1f}%", 100.0 * r.gflops_all / peak512_all) : "-";
    if (!o.json) {
      fmt::print("{:>6} {:>10} {:>10} {:>9} {:>8} {:>8} {:>8} {:>7} {:>7} {:>10} {:>9} {:>9} {:>10.2f}\n", r.n,
                 num(r.blocked_1t_s * 1e3, "{:.2f}"), num(r.blocked_all_s * 1e3, "{:.2f}"), num(r.gflops_all, "{:.1f}"),
                 num(isa_peak_all > 0 ? 100.0 * r.gflops_all / isa_peak_all : 0, "{:.1f}%"), num(pct, "{:.1f}%"), pct512, num(r.speedup_threads, "{:.2f}x"),
                 r.naive_all_s < 0 ? "-" : fmt::format("{:.1f}ms", r.naive_all_s * 1e3),
                 r.naive_all_s < 0 ? "-" : fmt::format("{:.1f}x", r.naive_over_blocked),
                 r.extra_mib < 0 ? "?" : fmt::format("{:.1f}", r.extra_mib),
                 r.extra_with_weights_mib < 0 ? "-" : fmt::format("{:.1f}", r.extra_with_weights_mib),
                 r.workspace_mib);
    }
    nlohmann::json e;
    e["n"] = r.n;
    e["gflop"] = r.gflop;
    e["blocked_1_thread_s"] = r.blocked_1t_s;
    e["blocked_all_threads_s"] = r.blocked_all_s;
    e["gflops_1_thread"] = r.gflops_1t;
    e["gflops_all_threads"] = r.gflops_all;
    e["peak_ratio_1_thread"] = peak1 > 0 ? r.gflops_1t / peak1 : 0;
    e["isa_peak_ratio_all_threads"] = isa_peak_all > 0 ? r.gflops_all / isa_peak_all : 0;
    e["peak_ratio_all_threads"] = peak_all > 0 ? r.gflops_all / peak_all : 0;
    e["peak512_ratio_all_threads"] = peak512_all > 0 ? nlohmann::json(r.gflops_all / peak512_all) : nlohmann::json(nullptr);
    e["thread_speedup"] = r.speedup_threads;
    e["naive_all_threads_s"] = r.naive_all_s < 0 ? nlohmann::json(nullptr) : nlohmann::json(r.naive_all_s);
    e["naive_over_blocked"] = r.naive_all_s < 0 ? nlohmann::json(nullptr) : nlohmann::json(r.naive_over_blocked);
    e["extra_mib"] = r.extra_mib < 0 ? nlohmann::json(nullptr) : nlohmann::json(r.extra_mib);
    e["extra_with_weights_mib"] =
        r.extra_with_weights_mib < 0 ? nlohmann::json(nullptr) : nlohmann::json(r.extra_with_weights_mib);
    e["workspace_mib"] = r.workspace_mib;
    j["kernels"].push_back(e);
  }
  if (!o.no_models && !o.memory_only) {
    auto shapes = nn::bench_model_shapes(all, o.quick ? 0.05 : 0.2);
    if (!o.json) fmt::print("\nmodel shapes ({} threads){:>30} {:>12}\n", all, "forward ms", "fwd+bwd ms");
    j["model_shapes"] = nlohmann::json::array();
    for (const auto& m : shapes) {
      if (!o.json)
        fmt::print("  {:<34}{}{:>12.3f} {:>12.3f}\n", m.name, m.causal ? " causal " : "        ", m.forward_ms,
                   m.forward_backward_ms);
      j["model_shapes"].push_back({{"name", m.name}, {"B", m.B}, {"H", m.H}, {"N", m.N}, {"Dh", m.Dh},
                                   {"causal", m.causal}, {"forward_ms", m.forward_ms},
                                   {"forward_backward_ms", m.forward_backward_ms}});
    }
  }
  if (o.json) fmt::print("{}\n", j.dump(2));
}
}  // namespace

void add_bench_kernels(CLI::App& parent) {
  auto o = std::make_shared<BenchKernelsOptions>();
  auto* sub = parent.add_subcommand("kernels", "attention kernel GFLOP/s vs the measured FMA peak, blocked vs naive, 1 vs all threads, memory");
  sub->add_option("--sizes", o->sizes, "sequence lengths N to time")->delimiter(',');
  sub->add_option("--dim", o->d, "head dimension d")->check(CLI::Range(1, 1024));
  sub->add_option("--heads", o->heads, "heads H")->check(CLI::Range(1, 256));
  sub->add_option("--naive-max", o->naive_max, "largest N for the (slow) naive reference");
  sub->add_flag("--quick", o->quick, "only N <= 1024, shorter timings");
  sub->add_flag("--no-models", o->no_models, "skip the model-shape forward/backward timings");
  sub->add_flag("--memory-only", o->memory_only, "measure only the peak extra memory (e.g. --sizes 16384)");
  sub->add_option("--isa", o->isa, "run the kernels on this ISA or narrower: best, avx512, avx2, sse4, portable");
  sub->add_flag("--json", o->json, "print JSON instead of a table");
  set_example(sub, "attnviz bench kernels --sizes 1024,4096 --threads 2");
  sub->callback([o] { run(*o); });
}

}  // namespace attnviz::cli
