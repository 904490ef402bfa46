// The Highway-dispatched element-wise kernels (softmax rows, exact-erf GELU and its derivative):
// known answers against float64 references on every ISA path the CPU has, every row length around
// the vector widths (4, 8, 16 floats), masked entries, and the far tails. CTest runs this file
// again with ATTNVIZ_ISA=avx2 and =portable.
#include <doctest/doctest.h>

#include <attnviz/engine/attention.hpp>
#include <attnviz/engine/ops.hpp>
#include <attnviz/engine/rng.hpp>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "test_engine_util.hpp"

using namespace attnviz;
using namespace attnviz::nn;
using namespace attnviz::test;

namespace {

double phi_cdf(double x) { return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))); }
double phi_pdf(double x) { return std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI); }

}  // namespace

TEST_CASE("gelu_erf: values and derivative against float64 erf on every ISA, every tail length") {
  IsaGuard guard;
  std::vector<float> xs;
  for (int i = -1200; i <= 1200; ++i) xs.push_back(static_cast<float>(i) / 100.f);   // [-12, 12] step 0.01
  for (float v : {-40.f, -20.f, -9.5f, -1e-6f, 0.f, 1e-6f, 9.5f, 20.f, 40.f}) xs.push_back(v);
  for (const std::string& isa : cpu_isas()) {
    set_kernel_isa(isa);
    INFO("isa=" << isa);
    std::vector<float> y(xs.size()), d(xs.size());
    gelu_erf(xs.data(), y.data(), d.data(), static_cast<Eigen::Index>(xs.size()));
    for (size_t i = 0; i < xs.size(); ++i) {
      const double x = xs[i];
      INFO("x=" << x);
      CHECK(std::abs(y[i] - x * phi_cdf(x)) <= 1e-6 * std::max(1.0, std::abs(x)));
      CHECK(std::abs(d[i] - (phi_cdf(x) + x * phi_pdf(x))) <= 1e-6);
    }
    CHECK(y[1200] == 0.f);                                        // GELU(0) = 0
    CHECK(y[1300] == doctest::Approx(0.8413447460685429).epsilon(1e-6));   // GELU(1) = Phi(1)
    CHECK(y[1000] == doctest::Approx(-2.0 * 0.022750131948179).epsilon(1e-4));   // GELU(-2)
    // Lengths 0..35 (every remainder of every vector width), in place and without a derivative:
    // the same numbers, and nothing past n is written.
    for (int n = 0; n <= 35; ++n) {
      std::vector<float> buf(xs.begin() + 1100, xs.begin() + 1100 + n);
      buf.push_back(123.f);   // sentinel
      gelu_erf(buf.data(), buf.data(), nullptr, n);
      for (int i = 0; i < n; ++i) CHECK(buf[i] == y[1100 + i]);
      CHECK(buf[n] == 123.f);
    }
  }
}

TEST_CASE("softmax_rows: float64 reference, masked keys, all-masked rows, every row length, every ISA") {
  IsaGuard guard;
  const float ninf = -std::numeric_limits<float>::infinity();
  for (const std::string& isa : cpu_isas()) {
    set_kernel_isa(isa);
    for (int cols = 1; cols <= 53; ++cols) {
      INFO("isa=" << isa << " cols=" << cols);
      Rng rng(static_cast<uint64_t>(cols));
      const int rows = 5;
      Mat x(rows, cols + 1);   // the extra column is a sentinel outside the map
      for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = 8.f * (rng.uniform() - 0.5f);
      for (int j = cols / 2; j < cols; ++j) x(1, j) = ninf;   // masked tail (row 1 keeps >= 1 key)
      if (cols > 2) x(2, 0) = ninf;                           // a masked key first
      for (int j = 0; j < cols; ++j) x(3, j) = ninf;          // nothing visible: zeros, not NaN
      x(4, cols - 1) = 80.f;                                  // one dominant logit
      Mat ref = x;
      for (int r = 0; r < rows; ++r) x(r, cols) = 555.f;
      // Rows of the map are the first `cols` floats of each row of a [rows, cols] buffer.
      Mat packed(rows, cols);
      for (int r = 0; r < rows; ++r) packed.row(r) = x.row(r).head(cols);
      std::vector<float> after(static_cast<size_t>(rows) * cols + 1, 0.f);
      std::copy(packed.data(), packed.data() + packed.size(), after.begin());
      after.back() = 555.f;
      softmax_rows(MatMap(after.data(), rows, cols));
      CHECK(after.back() == 555.f);
      for (int r = 0; r < rows; ++r) {
        double m = -INFINITY, s = 0;
        for (int j = 0; j < cols; ++j) m = std::max(m, static_cast<double>(ref(r, j)));
        for (int j = 0; j < cols; ++j) s += std::isinf(ref(r, j)) ? 0.0 : std::exp(ref(r, j) - m);
        for (int j = 0; j < cols; ++j) {
          const float got = after[static_cast<size_t>(r) * cols + j];
          if (r == 3) {
            CHECK(got == 0.f);
          } else {
            const double want = std::isinf(ref(r, j)) ? 0.0 : std::exp(ref(r, j) - m) / s;
            CHECK(std::abs(got - want) <= 1e-6 * want + 1e-30);
          }
        }
      }
    }
  }
}
