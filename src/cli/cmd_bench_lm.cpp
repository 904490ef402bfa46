// `attnviz bench lm`: prefill and generation throughput of a llama-shaped model with random weights
// the size of SmolLM2-135M (generated in memory), with and without recording every head, in
// tokens/s and matmul GFLOP/s against the measured FP32 peak; plus stories260K generation on one thread.
#include "cli/bench_common.hpp"
#include "cli/commands.hpp"
#include "engine/bench.hpp"

#include <attnviz/engine/ops.hpp>
#include <attnviz/error.hpp>
#include <attnviz/io/gguf.hpp>
#include <attnviz/models/lm.hpp>

#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <omp.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>

namespace attnviz::cli {

namespace {

struct BenchLmOptions {
  std::vector<int> sizes = {128, 512, 2048};
  int gen_prompt = 128, gen_steps = 128;
  double min_seconds = 1.0;
  double max_record_mib = 2048;
  std::string stories;   // stories260K.gguf (default: ../shared/models beside the checkout)
  bool json = false;
  bool q8 = true;
};


std::string default_stories() { return (shared_models_dir() / "stories260K" / "stories260K.gguf").string(); }

void run(const BenchLmOptions& o) {
  const int threads = globals().threads > 0 ? globals().threads : nn::threads();
  const double peak = nn::fma_peak_gflops(threads, 0.2), peak512 = nn::fma512_peak_gflops(threads, 0.2);
  const double best_peak = std::max(peak, peak512);
  models::LmConfig cfg;
  cfg.arch = models::LmArch::Llama;
  cfg.name = "SmolLM2-135M shape (random weights)";
  cfg.layers = 30; cfg.dim = 576; cfg.heads = 9; cfg.kv_heads = 3; cfg.head_dim = 64; cfg.ffn = 1536;
  cfg.vocab = 49152; cfg.context = 8192; cfg.tied_output = true; cfg.rope_base = 100000;
  models::LmModel m(cfg);
  m.init_random(1, 0.02f);
  nlohmann::json j;
  j["threads"] = threads;
  j["peak_gflops"] = peak;
  j["peak512_gflops"] = peak512 > 0 ? nlohmann::json(peak512) : nlohmann::json(nullptr);
  j["model"] = {{"layers", cfg.layers}, {"dim", cfg.dim}, {"heads", cfg.heads}, {"kv_heads", cfg.kv_heads},
                {"ffn", cfg.ffn}, {"vocab", cfg.vocab}, {"parameters", cfg.parameters()}};
  if (!o.json) {
    fmt::print("{}: {} layers, d {}, {} heads / {} KV heads, FFN {}, vocab {} ({:.1f} M parameters, F32)\n", cfg.name,
               cfg.layers, cfg.dim, cfg.heads, cfg.kv_heads, cfg.ffn, cfg.vocab, cfg.parameters() / 1e6);
    fmt::print("FP32 FMA peak on {} threads: {:.1f} GFLOP/s (AVX2){}\n", threads, peak,
               peak512 > 0 ? fmt::format(", {:.1f} GFLOP/s (AVX-512)", peak512) : "");
    fmt::print("{:<28} {:>10} {:>12} {:>12} {:>10}\n", "", "ms", "tokens/s", "GFLOP/s", "% peak");
  }
  auto row = [&](const std::string& what, double s, int tokens, double flops) {
    const double gf = flops / s / 1e9;
    if (!o.json)
      fmt::print("{:<28} {:>10.1f} {:>12.0f} {:>12.1f} {:>9.0f}%\n", what, s * 1e3, tokens / s, gf, 100 * gf / best_peak);
    j["rows"].push_back({{"what", what}, {"seconds", s}, {"tokens", tokens}, {"tokens_per_s", tokens / s},
                         {"gflops", gf}, {"peak_ratio", gf / best_peak}});
  };

  nn::Rng rng(7);
  for (int T : o.sizes) {
    std::vector<int> ids(T);
    for (int& id : ids) id = rng.below(cfg.vocab);
    const double flops = m.matmul_flops(T, 0);
    models::LmCache cache = m.new_cache(T);
    const double s = best_seconds([&] { cache.length = 0; m.forward(ids, cache); }, o.min_seconds, 10);
    row(fmt::format("prefill T={}", T), s, T, flops);
    const double mib = models::lm_record_bytes(cfg, T) / (1024.0 * 1024.0);
    if (mib > o.max_record_mib) {
      if (!o.json)
        fmt::print("{:<28} refused: the record needs {:.0f} MiB > --max-record-mib {:.0f}\n",
                   fmt::format("prefill T={} + record", T), mib, o.max_record_mib);
      j["rows"].push_back({{"what", fmt::format("prefill T={} + record", T)}, {"refused_mib", mib}});
      continue;
    }
    const double sr = best_seconds([&] { KeepAllWeights k; cache.length = 0; m.forward(ids, cache, &k); }, o.min_seconds, 10);
    row(fmt::format("prefill T={} + record", T), sr, T, flops);
  }

  // Q8_0: GGUF Q8_0 tensors are dequantized to float32 when a file is loaded (one tuned F32 GEMM
  // serves every type), so a Q8_0 model costs its dequantization once at load and then runs at the
  // F32 speed above. These rows measure both on the same shape: every matrix quantized to Q8_0
  // blocks in memory, timed while dequantized into the model, then one prefill with those weights.
  if (o.q8) {
    std::vector<std::pair<Mat*, std::vector<std::uint8_t>>> blocks;
    std::uint64_t bytes = 0, elems = 0;
    for (const auto& spec : models::lm_tensor_table(cfg)) {
      Mat* w = nullptr;
      try {
        w = &m.weight(spec.name);
      } catch (const std::out_of_range&) {
        continue;   // optional tensor this config has not
      }
      if (w->rows() < 2 || w->size() % 32 != 0) continue;   // norms stay F32, as in llama.cpp's files
      blocks.emplace_back(w, ggml_quantize_q8_0(w->data(), static_cast<std::uint64_t>(w->size())));
      bytes += blocks.back().second.size();
      elems += static_cast<std::uint64_t>(w->size());
    }
    const double sd = best_seconds([&] {
      for (auto& [w, q] : blocks) ggml_dequantize(GgmlType::Q8_0, q.data(), w->data(), static_cast<std::uint64_t>(w->size()));
    }, o.min_seconds, 5);
    if (!o.json)
      fmt::print("{:<28} {:>10.1f}   ({:.0f} MiB of Q8_0 blocks -> {:.0f} MiB F32, {:.1f} GB/s read, 1 thread)\n",
                 "Q8_0: dequantize at load", sd * 1e3, bytes / 1048576.0, elems * 4 / 1048576.0, bytes / sd / 1e9);
    j["rows"].push_back({{"what", "Q8_0: dequantize at load"}, {"seconds", sd}, {"q8_bytes", bytes}, {"f32_bytes", elems * 4}});
    // K-quants (what Q4_K_M files hold): the same matrices as Q4_K and Q6_K super-blocks of 256,
    // dequantized as one run of blocks each. The work per block does not depend on the values, so the
    // blocks hold a fixed byte pattern with finite scales (d, dmin = 2^-14) instead of quantized weights.
    for (const GgmlType kt : {GgmlType::Q4_K, GgmlType::Q6_K}) {
      const std::uint64_t bb = ggml_block_bytes(kt);
      std::vector<std::pair<Mat*, std::vector<std::uint8_t>>> kb;
      std::uint64_t kbytes = 0, kelems = 0;
      for (auto& [w, q8] : blocks) {
        if (w->size() % 256 != 0) continue;
        std::vector<std::uint8_t> v(static_cast<std::size_t>(w->size() / 256 * bb));
        for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::uint8_t>(i * 37 + 11);
        for (std::size_t b = 0; b < v.size(); b += bb)
          for (std::size_t at : kt == GgmlType::Q4_K ? std::vector<std::size_t>{0, 2} : std::vector<std::size_t>{208})
            v[b + at] = 0x00, v[b + at + 1] = 0x04;   // f16 0x0400 = 2^-14
        kbytes += v.size();
        kelems += static_cast<std::uint64_t>(w->size());
        kb.emplace_back(w, std::move(v));
      }
      const double sk = best_seconds([&] {
        for (auto& [w, q] : kb) ggml_dequantize(kt, q.data(), w->data(), static_cast<std::uint64_t>(w->size()));
      }, o.min_seconds, 5);
      const std::string what = fmt::format("{}: dequantize at load", ggml_type_name(static_cast<std::uint32_t>(kt)));
      if (!o.json)
        fmt::print("{:<28} {:>10.1f}   ({:.0f} MiB of {} blocks -> {:.0f} MiB F32, {:.1f} GB/s written, 1 thread)\n",
                   what, sk * 1e3, kbytes / 1048576.0, ggml_type_name(static_cast<std::uint32_t>(kt)),
                   kelems * 4 / 1048576.0, kelems * 4 / sk / 1e9);
      j["rows"].push_back({{"what", what}, {"seconds", sk}, {"block_bytes", kbytes}, {"f32_bytes", kelems * 4}});
    }
    // The K-quant rows wrote pattern values into the weights: put the Q8_0 ones back for the prefill.
    for (auto& [w, q] : blocks) ggml_dequantize(GgmlType::Q8_0, q.data(), w->data(), static_cast<std::uint64_t>(w->size()));
    const int T = 512;
    std::vector<int> ids(T);
    for (int& id : ids) id = rng.below(cfg.vocab);
    models::LmCache cache = m.new_cache(T);
    const double s = best_seconds([&] { cache.length = 0; m.forward(ids, cache); }, o.min_seconds, 10);
    row(fmt::format("prefill T={} (Q8_0 weights)", T), s, T, m.matmul_flops(T, 0));
  }

  // Generation: a prompt, then steps tokens one at a time (greedy), with and without recording.
  for (bool rec : {false, true}) {
    models::GenerateOptions g;
    g.prompt.resize(o.gen_prompt);
    for (int& id : g.prompt) id = rng.below(cfg.vocab);
    g.steps = o.gen_steps;
    g.record = rec;
    g.forward_last = true;   // steps tokens = steps decode steps, so --steps 1 times one step, not none
    g.max_record_mib = o.max_record_mib;
    models::GenerateResult r = models::generate(m, g);
    if (r.decoded != o.gen_steps) throw std::logic_error("bench lm: generation ran fewer decode steps than --steps");
    double flops = 0;
    for (int s = 0; s < r.decoded; ++s) flops += m.matmul_flops(1, o.gen_prompt + s);
    row(fmt::format("generate {}+{}{}", o.gen_prompt, o.gen_steps, rec ? " + record" : ""), r.decode_seconds,
        r.decoded, flops);
  }

  // stories260K (when present): generation on one thread, every head recorded.
  const std::string path = o.stories.empty() ? default_stories() : o.stories;
  if (std::filesystem::exists(path)) {
    models::LoadedLm lm = models::load_lm(path);
    for (bool rec : {false, true}) {
      models::GenerateOptions g;
      g.prompt = {1};
      g.steps = 511;
      g.record = rec;
      g.forward_last = true;
      g.threads = 1;
      double best = 1e300;
      int decoded = 0;
      for (int rep = 0; rep < 5; ++rep) {
        models::GenerateResult r = models::generate(*lm.model, g);
        best = std::min(best, r.decode_seconds);
        decoded = r.decoded;
      }
      double flops = 0;
      for (int s = 0; s < decoded; ++s) flops += lm.model->matmul_flops(1, 1 + s);
      row(fmt::format("stories260K 1 thread{}", rec ? " + record" : ""), best, decoded, flops);
    }
  } else if (!o.json) {
    fmt::print("(stories260K not found at {}: --stories FILE adds its generation rows)\n", path);
  }
  if (o.json) fmt::print("{}\n", j.dump(2));
}

}  // namespace

void add_bench_lm(CLI::App& parent) {
  auto o = std::make_shared<BenchLmOptions>();
  auto* sub = parent.add_subcommand("lm", "decoder LM prefill/generation tokens/s and GFLOP/s (SmolLM2-135M shape, random weights), with and without recording");
  sub->add_option("--sizes", o->sizes, "prefill lengths T")->delimiter(',');
  sub->add_option("--prompt", o->gen_prompt, "generation: prompt tokens")->check(CLI::Range(1, 4096));
  sub->add_option("--steps", o->gen_steps,
                  "generation: tokens generated, each one timed decode step (the last one runs through the model "
                  "too, so tokens/s = steps / their time)")->check(CLI::Range(1, 4096));
  sub->add_option("--min-seconds", o->min_seconds, "repeat each prefill at least this long (best run kept)");
  sub->add_option("--max-record-mib", o->max_record_mib, "recording runs whose record would exceed this are refused");
  sub->add_option("--stories", o->stories, "stories260K.gguf for the one-thread generation rows (default: ../shared/models)");
  sub->add_flag("--json", o->json, "machine-readable output");
  sub->add_flag("!--no-q8", o->q8, "leave out the quantized rows (Q8_0, Q4_K, Q6_K dequantize at load; prefill T=512 with Q8_0 weights)");
  set_example(sub, "attnviz --threads 2 bench lm --sizes 128,512");
  sub->callback([o] { run(*o); });
}

}  // namespace attnviz::cli
