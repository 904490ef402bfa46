// A generic central-difference gradient checker (used by every layer's and scoring function's test).
#pragma once
#include <attnviz/tensor.hpp>

#include <cstdint>
#include <functional>
#include <string>

namespace attnviz::nn {

struct GradCheckOptions {
  double eps = 1e-2;       // step (float32 forward passes: larger steps beat rounding noise)
  double rtol = 2e-2;      // |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|)
  double atol = 2e-3;
  int max_checks = 48;     // entries checked (a seeded random subset when x is larger)
  std::uint64_t seed = 7;
};

struct GradCheckResult {
  bool ok = true;
  int checked = 0;
  double worst_excess = 0;  // max of |a - n| - (atol + rtol * max(|a|, |n|)) (<= 0 when ok)
  std::string message;      // "<what>[i, j]: analytic A, numeric N" for the worst entry
};

// Perturbs entries of x (in place, restored after) and compares (loss(x+eps) - loss(x-eps)) / 2eps
// with analytic(i, j). loss() must recompute the whole forward from the current x.
GradCheckResult check_gradient(const std::string& what, Mat& x, const Mat& analytic,
                               const std::function<double()>& loss,
                               const GradCheckOptions& opt = {});

// sum_ij y_ij * r_ij in double: a scalar loss whose gradient w.r.t. y is r.
double weighted_sum(const Mat& y, const Mat& r);

}  // namespace attnviz::nn
