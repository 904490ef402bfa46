// Central-difference gradient checker: perturb a (seeded) subset of entries, compare slopes.
#include "gradcheck.hpp"
#include <attnviz/engine/rng.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>
#include <vector>

namespace attnviz::nn {

double weighted_sum(const Mat& y, const Mat& r) {
  double s = 0;
  for (Eigen::Index i = 0; i < y.size(); ++i) s += static_cast<double>(y.data()[i]) * r.data()[i];
  return s;
}

GradCheckResult check_gradient(const std::string& what, Mat& x, const Mat& analytic,
                               const std::function<double()>& loss, const GradCheckOptions& opt) {
  GradCheckResult res;
  if (analytic.rows() != x.rows() || analytic.cols() != x.cols()) {
    res.ok = false;
    res.message = what + ": analytic gradient has shape [" + std::to_string(analytic.rows()) + ", " +
                  std::to_string(analytic.cols()) + "], x has [" + std::to_string(x.rows()) + ", " +
                  std::to_string(x.cols()) + "]";
    return res;
  }
  std::vector<int> idx(static_cast<size_t>(x.size()));
  std::iota(idx.begin(), idx.end(), 0);
  if (static_cast<int>(idx.size()) > opt.max_checks) {
    Rng rng(opt.seed);
    rng.shuffle(idx);
    idx.resize(opt.max_checks);
  }
  res.worst_excess = -1e300;
  for (int i : idx) {
    float& xi = x.data()[i];
    const float saved = xi;
    xi = static_cast<float>(saved + opt.eps);
    double hi = loss();
    xi = static_cast<float>(saved - opt.eps);
    double lo = loss();
    xi = saved;
    double num = (hi - lo) / (2 * opt.eps);
    double ana = analytic.data()[i];
    double excess = std::abs(ana - num) - (opt.atol + opt.rtol * std::max(std::abs(ana), std::abs(num)));
    ++res.checked;
    if (excess > res.worst_excess) {
      res.worst_excess = excess;
      std::ostringstream os;
      os << what << "[" << i / x.cols() << ", " << i % x.cols() << "]: analytic " << ana
         << ", numeric " << num;
      res.message = os.str();
    }
  }
  res.ok = res.worst_excess <= 0;
  return res;
}

}  // namespace attnviz::nn
