// Helpers for the engine tests: random matrices and "check every gradient of a layer".
#pragma once
#include "gradcheck.hpp"
#include <attnviz/engine/attention.hpp>
#include <attnviz/engine/nn.hpp>

#include <doctest/doctest.h>

#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace attnviz::test {

// Whether this CPU can run a kernel ISA of nn::set_kernel_isa ("portable" always).
inline bool cpu_has(const std::string& isa) {
  if (isa == "avx512") return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                              __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
  if (isa == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == "sse4") return __builtin_cpu_supports("sse4.2");
  return true;
}

// The kernel ISAs this CPU can run, widest first.
inline std::vector<std::string> cpu_isas() {
  std::vector<std::string> out;
  for (const char* isa : {"avx512", "avx2", "sse4", "portable"})
    if (cpu_has(isa)) out.push_back(isa);
  return out;
}

// Restores the ISA the process started with (ATTNVIZ_ISA or the best) when a test case ends.
struct IsaGuard {
  ~IsaGuard() {
    const char* e = std::getenv("ATTNVIZ_ISA");
    nn::set_kernel_isa(e && *e ? e : "best");
  }
};

inline Mat randn(int rows, int cols, nn::Rng& rng, float stddev = 1.f) {
  Mat m(rows, cols);
  nn::normal_init(m, rng, stddev);
  return m;
}

// Checks d(sum(fwd() .* R))/d(x) and /d(every param in ps) against central differences.
// fwd(): forward from the current x and parameters; bwd(dy): backward, returns dx (or empty).
inline void check_all_gradients(const std::string& what, Mat* x, nn::ParamSet& ps,
                                const std::function<Mat()>& fwd,
                                const std::function<Mat(const Mat&)>& bwd,
                                nn::GradCheckOptions opt = {}) {
  Mat y = fwd();
  nn::Rng rng(99);
  Mat R = randn(static_cast<int>(y.rows()), static_cast<int>(y.cols()), rng);
  ps.zero_grad();
  Mat dx = bwd(R);
  auto loss = [&] { return nn::weighted_sum(fwd(), R); };
  int checked = 0;
  if (x) {
    auto r = nn::check_gradient(what + ".x", *x, dx, loss, opt);
    CHECK_MESSAGE(r.ok, r.message);
    checked += r.checked;
  }
  for (nn::Param* p : ps.params()) {
    Mat g = p->grad;
    auto r = nn::check_gradient(what + "." + p->name, p->value, g, loss, opt);
    CHECK_MESSAGE(r.ok, r.message);
    checked += r.checked;
  }
  CHECK(checked > 0);
}

}  // namespace attnviz::test
