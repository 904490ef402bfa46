// Kernel benchmarks behind `attnviz bench kernels`: the machine's FP32 FMA peak (measured by an
// AVX2 micro-kernel), blocked vs naive attention, 1 vs all threads, peak extra memory.
#pragma once
#include <string>
#include <vector>

namespace attnviz::nn {

// FP32 GFLOP/s of a register-resident AVX2 FMA loop (12 independent accumulators) run on
// `threads` threads at once for about `seconds`. 0 when the CPU lacks AVX2/FMA.
double fma_peak_gflops(int threads, double seconds = 0.2);
// The same loop on 512-bit vectors (the kernels' ceiling when the dispatch picks AVX-512).
// 0 when the CPU lacks AVX-512F. On Zen 4 it equals the AVX2 figure: 512-bit FMAs are split into
// two 256-bit halves.
double fma512_peak_gflops(int threads, double seconds = 0.2);
// The peak of the ISA the kernels run on (nn::kernel_isa()): avx512, avx2, sse4/ssse3 (128-bit
// mul + add, no FMA) or portable (scalar mul + add).
double isa_peak_gflops(const std::string& isa, int threads, double seconds = 0.2);
// "model name" of /proc/cpuinfo, and the SIMD features the dispatch looks at ("avx512f avx2 fma ...").
std::string cpu_model();
std::string cpu_isa_flags();

struct KernelBenchOptions {
  std::vector<int> sizes = {128, 512, 1024, 2048, 4096, 8192};   // N (= Nq = Nk)
  int d = 64;            // head dim
  int heads = 8;         // H (batch 1)
  int threads = 0;       // "all threads" (0 = nn::threads())
  int naive_max_n = 2048;  // the naive reference is O(N^2) memory and slow: skip above this
  double min_seconds = 0.25;  // repeat each measurement at least this long, keep the best run
  bool timings = true;        // false: only measure memory (for sizes too slow to time)
};

struct KernelBenchRow {
  int n = 0;
  double gflop = 0;               // 4 N^2 d H
  double blocked_1t_s = 0, blocked_all_s = 0;
  double naive_all_s = -1;        // -1 = skipped
  double gflops_1t = 0, gflops_all = 0;
  double speedup_threads = 0;     // blocked_1t_s / blocked_all_s
  double naive_over_blocked = 0;  // naive_all_s / blocked_all_s (0 when skipped)
  double extra_mib = -1;          // measured peak RSS growth during one blocked call (-1 = unknown)
  double extra_with_weights_mib = -1;  // same with the weights output requested (n <= 4096)
  double workspace_mib = 0;       // what the kernel allocates by design
};

std::vector<KernelBenchRow> bench_kernels(const KernelBenchOptions& opt);

// Forward and forward+backward of the attention kernel at the shapes the models use.
struct ModelShapeRow {
  std::string name;
  int B = 0, H = 0, N = 0, Dh = 0;
  bool causal = false;
  double forward_ms = 0, forward_backward_ms = 0;
};
std::vector<ModelShapeRow> bench_model_shapes(int threads, double min_seconds = 0.2);

}  // namespace attnviz::nn
