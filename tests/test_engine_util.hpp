// Helpers for the engine tests: random matrices and "check every gradient of a layer".
#pragma once
#include "gradcheck.hpp"
#include <attnviz/engine/nn.hpp>

#include <doctest/doctest.h>

#include <functional>
#include <string>

namespace attnviz::test {

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
