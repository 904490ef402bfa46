// Internal: split a row range over OpenMP threads when the work is big enough to pay.
#pragma once
#include <attnviz/engine/ops.hpp>

#include <Eigen/Core>

namespace attnviz::nn::detail {

// Calls f(begin, end) on contiguous row ranges, one per thread; `work` is a rough count of
// operations for all rows (below ~250k the fork/join costs more than it saves).
template <class F>
void parallel_rows(Eigen::Index rows, double work, F&& f) {
  int t = work < 2.5e5 ? 1 : threads();
  if (t > rows) t = static_cast<int>(rows > 0 ? rows : 1);
  if (t <= 1) {
    f(Eigen::Index(0), rows);
    return;
  }
#pragma omp parallel for num_threads(t) schedule(static)
  for (int i = 0; i < t; ++i) {
    Eigen::Index b = rows * i / t, e = rows * (i + 1) / t;
    if (e > b) f(b, e);
  }
}

}  // namespace attnviz::nn::detail
