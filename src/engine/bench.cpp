// Kernel benchmarks: FMA peak micro-kernel, blocked vs naive attention timings, peak memory.
#include <attnviz/engine/attention.hpp>
#include "engine/bench.hpp"
#include <attnviz/engine/ops.hpp>
#include <attnviz/engine/rng.hpp>

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include <immintrin.h>

namespace attnviz::nn {

namespace {
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Best time of f() over repeats lasting at least min_seconds (one warm-up run first).
double best_time(const std::function<void()>& f, double min_seconds) {
  f();
  double best = 1e300, total = 0;
  int runs = 0;
  while (total < min_seconds || runs < 2) {
    auto t0 = Clock::now();
    f();
    double t = seconds_since(t0);
    best = std::min(best, t);
    total += t;
    if (++runs >= 50) break;
  }
  return best;
}

// 12 independent FMA chains (latency 4 x 2 ports = 8 in flight needed; 12 leaves slack), kept in
// named variables: an array makes GCC store every accumulator to the stack each iteration.
// Each chain starts from a different value and passes through an empty asm barrier every
// iteration: without it GCC proves the 12 chains equal and folds them into one FMA per iteration,
// which made an earlier version of this loop report 12x the real peak.
// The build is portable (no -march), so each loop carries its own target attribute and runs only
// when the CPU has that ISA (checked with __builtin_cpu_supports before the call).
#define ATTNVIZ_FMA_LOOP(V, SET1, FMA, ADD)                                                              \
  V a0 = SET1(seed), a1 = SET1(seed + 1), a2 = SET1(seed + 2), a3 = SET1(seed + 3), a4 = SET1(seed + 4), \
    a5 = SET1(seed + 5), a6 = SET1(seed + 6), a7 = SET1(seed + 7), a8 = SET1(seed + 8),                  \
    a9 = SET1(seed + 9), a10 = SET1(seed + 10), a11 = SET1(seed + 11);                                   \
  const V x = SET1(0.999999f), y = SET1(1e-7f);                                                          \
  for (long it = 0; it < iters; ++it) {                                                                  \
    a0 = FMA(a0, x, y); a1 = FMA(a1, x, y); a2 = FMA(a2, x, y); a3 = FMA(a3, x, y);                      \
    a4 = FMA(a4, x, y); a5 = FMA(a5, x, y); a6 = FMA(a6, x, y); a7 = FMA(a7, x, y);                      \
    a8 = FMA(a8, x, y); a9 = FMA(a9, x, y); a10 = FMA(a10, x, y); a11 = FMA(a11, x, y);                  \
    __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5));                   \
    __asm__ volatile("" : "+x"(a6), "+x"(a7), "+x"(a8), "+x"(a9), "+x"(a10), "+x"(a11));                 \
  }                                                                                                      \
  V s = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));                               \
  s = ADD(s, ADD(ADD(a8, a9), ADD(a10, a11)));                                                           \
  alignas(64) float out[sizeof(V) / sizeof(float)];                                                      \
  std::memcpy(out, &s, sizeof(V));                                                                       \
  return out[0];

#define ATTNVIZ_MULADD_128(a, b, c) _mm_add_ps(_mm_mul_ps(a, b), c)   // SSE has no FMA: 2 flops, 2 ops
#define ATTNVIZ_MULADD_1(a, b, c) ((a) * (b) + (c))
#define ATTNVIZ_ADD_1(a, b) ((a) + (b))
#define ATTNVIZ_SET1_1(v) (v)
__attribute__((noinline, target("avx2,fma"))) float fma_loop_256(long iters, float seed) {
  ATTNVIZ_FMA_LOOP(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps)
}
__attribute__((noinline, target("avx512f"))) float fma_loop_512(long iters, float seed) {
  ATTNVIZ_FMA_LOOP(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps)
}
__attribute__((noinline)) float muladd_loop_128(long iters, float seed) {
  ATTNVIZ_FMA_LOOP(__m128, _mm_set1_ps, ATTNVIZ_MULADD_128, _mm_add_ps)
}
// The portable kernels' scalar code (-fp-contract keeps a*b+c as mul + add on plain x86-64).
__attribute__((noinline)) float muladd_loop_1(long iters, float seed) {
  ATTNVIZ_FMA_LOOP(float, ATTNVIZ_SET1_1, ATTNVIZ_MULADD_1, ATTNVIZ_ADD_1)
}
#undef ATTNVIZ_FMA_LOOP

using LoopFn = float (*)(long, float);

// GFLOP/s of `loop` (12 FMAs of `lanes` floats per iteration) on `threads` threads at once.
double measure_fma_loop(LoopFn loop, int lanes, int threads, double seconds) {
  threads = std::max(1, threads);
  // Calibrate the iteration count on one thread, then run all threads at once.
  long iters = 1 << 16;
  double t = 0;
  while (true) {
    auto t0 = Clock::now();
    volatile float sink = loop(iters, 1.f);
    (void)sink;
    t = seconds_since(t0);
    if (t > seconds / 4) break;
    iters *= 2;
  }
  iters = static_cast<long>(iters * (seconds / t));
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = Clock::now();
    float acc = 0;
#pragma omp parallel num_threads(threads) reduction(+ : acc)
    acc += loop(iters, static_cast<float>(omp_get_thread_num()));
    volatile float sink = acc;
    (void)sink;
    double dt = seconds_since(t0);
    best = std::max(best, 2.0 * lanes * 12 * static_cast<double>(iters) * threads / dt / 1e9);
  }
  return best;
}

// Current and peak resident set size (kB) from /proc/self/status.
bool read_rss(long& rss_kb, long& hwm_kb) {
  std::ifstream in("/proc/self/status");
  std::string line;
  rss_kb = hwm_kb = -1;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string key;
    long v;
    ls >> key >> v;
    if (key == "VmRSS:") rss_kb = v;
    if (key == "VmHWM:") hwm_kb = v;
  }
  return rss_kb >= 0 && hwm_kb >= 0;
}

// Peak RSS growth while f() runs: resets the high-water mark (Linux clear_refs "5") first.
double peak_extra_mib(const std::function<void()>& f) {
  {
    std::ofstream clear("/proc/self/clear_refs");
    if (!clear) return -1;
    clear << "5";
    if (!clear) return -1;
  }
  long rss0, hwm0, rss1, hwm1;
  if (!read_rss(rss0, hwm0)) return -1;
  f();
  if (!read_rss(rss1, hwm1)) return -1;
  return std::max(0L, hwm1 - rss0) / 1024.0;
}
}  // namespace

double fma_peak_gflops(int threads, double seconds) {
  if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return 0;
  return measure_fma_loop(&fma_loop_256, 8, threads, seconds);
}

double fma512_peak_gflops(int threads, double seconds) {
  if (!__builtin_cpu_supports("avx512f")) return 0;
  return measure_fma_loop(&fma_loop_512, 16, threads, seconds);
}

double isa_peak_gflops(const std::string& isa, int threads, double seconds) {
  if (isa == "avx512") return fma512_peak_gflops(threads, seconds);
  if (isa == "avx2") return fma_peak_gflops(threads, seconds);
  if (isa == "sse4" || isa == "ssse3") return measure_fma_loop(&muladd_loop_128, 4, threads, seconds);
  return measure_fma_loop(&muladd_loop_1, 1, threads, seconds);
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const size_t c = line.find(':');
      if (c != std::string::npos) return line.substr(line.find_first_not_of(" \t", c + 1));
    }
  return "unknown CPU";
}

std::string cpu_isa_flags() {
  std::string f;
  for (auto [name, has] : {std::pair{"avx512f", __builtin_cpu_supports("avx512f")},
                           std::pair{"avx2", __builtin_cpu_supports("avx2")}, std::pair{"fma", __builtin_cpu_supports("fma")},
                           std::pair{"sse4.2", __builtin_cpu_supports("sse4.2")}})
    if (has) f += (f.empty() ? "" : " ") + std::string(name);
  return f;
}

std::vector<KernelBenchRow> bench_kernels(const KernelBenchOptions& opt) {
  const int all = opt.threads > 0 ? opt.threads : threads();
  std::vector<KernelBenchRow> rows;
  for (int n : opt.sizes) {
    KernelBenchRow r;
    r.n = n;
    const int W = opt.heads * opt.d;
    r.gflop = 4.0 * n * static_cast<double>(n) * opt.d * opt.heads / 1e9;
    std::vector<float> q(static_cast<size_t>(n) * W), k(q.size()), v(q.size()), out(q.size());
    Rng rng(static_cast<uint64_t>(n));
    for (auto* m : {&q, &k, &v})
      for (float& x : *m) x = rng.normal();
    KernelShape s{1, opt.heads, n, n, opt.d};
    KernelOptions ko;
    ko.scale = 1.f / std::sqrt(static_cast<float>(opt.d));
    auto run = [&](int t) {
      KernelOptions o = ko;
      o.threads = t;
      attention_blocked(q.data(), k.data(), v.data(), out.data(), s, o);
    };
    // Memory first, while this N's buffers are not yet in the heap from the timing runs.
    KernelOptions o = ko;
    o.threads = all;
    r.workspace_mib = attention_blocked_workspace_bytes(s, o) / 1048576.0;
    r.extra_mib = peak_extra_mib([&] { run(all); });
    if (n <= 4096) {
      r.extra_with_weights_mib = peak_extra_mib([&] {
        std::vector<float> w(static_cast<size_t>(opt.heads) * n * n);
        KernelOptions ow = o;
        ow.weights = w.data();
        attention_blocked(q.data(), k.data(), v.data(), out.data(), s, ow);
      });
    }
    if (opt.timings) {
      r.blocked_1t_s = best_time([&] { run(1); }, opt.min_seconds);
      r.blocked_all_s = best_time([&] { run(all); }, opt.min_seconds);
      r.gflops_1t = r.gflop / r.blocked_1t_s;
      r.gflops_all = r.gflop / r.blocked_all_s;
      r.speedup_threads = r.blocked_1t_s / r.blocked_all_s;
    }
    if (opt.timings && n <= opt.naive_max_n) {
      KernelOptions o = ko;
      o.threads = all;
      r.naive_all_s = best_time([&] { attention_naive(q.data(), k.data(), v.data(), out.data(), s, o); },
                                opt.min_seconds / 4);
      r.naive_over_blocked = r.naive_all_s / r.blocked_all_s;
    }
    rows.push_back(r);
  }
  return rows;
}

std::vector<ModelShapeRow> bench_model_shapes(int thread_count, double min_seconds) {
  const int t = thread_count > 0 ? thread_count : threads();
  std::vector<ModelShapeRow> shapes = {
      {"mnist-vit self (B=64, T=50)", 64, 4, 50, 16, false},
      {"translator self (B=32, T=24)", 32, 4, 24, 16, true},
      {"long self (B=4, T=512)", 4, 8, 512, 64, false},
  };
  for (auto& m : shapes) {
    const size_t rows = static_cast<size_t>(m.B) * m.N, W = static_cast<size_t>(m.H) * m.Dh;
    std::vector<float> q(rows * W), k(rows * W), v(rows * W), out(rows * W), dout(rows * W), dq(rows * W),
        dk(rows * W), dv(rows * W), lse(static_cast<size_t>(m.B) * m.H * m.N);
    Rng rng(1);
    for (auto* x : {&q, &k, &v, &dout})
      for (float& e : *x) e = rng.normal();
    KernelShape s{m.B, m.H, m.N, m.N, m.Dh};
    KernelOptions o;
    o.scale = 1.f / std::sqrt(static_cast<float>(m.Dh));
    o.causal = m.causal;
    o.threads = t;
    o.lse = lse.data();
    m.forward_ms = 1e3 * best_time([&] { attention_blocked(q.data(), k.data(), v.data(), out.data(), s, o); }, min_seconds);
    m.forward_backward_ms = 1e3 * best_time([&] {
      attention_blocked(q.data(), k.data(), v.data(), out.data(), s, o);
      attention_backward(q.data(), k.data(), v.data(), out.data(), dout.data(), lse.data(), dq.data(), dk.data(),
                         dv.data(), s, o);
    }, min_seconds);
  }
  return shapes;
}

}  // namespace attnviz::nn
