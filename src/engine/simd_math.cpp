// Element-wise kernels of the training path, SIMD through Google Highway's run-time dispatch (the
// same targets and ATTNVIZ_ISA forcing as the attention kernels, attention_kernel.cpp): row softmax
// and the exact-erf GELU with its derivative. The portable build otherwise runs these on Eigen's
// SSE2 exp / erf, 4 floats per instruction, on a CPU with 16-float AVX-512 vectors.
#include <attnviz/engine/ops.hpp>

#include <cmath>
#include <cstddef>
#include <limits>

#include "engine/isa.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "engine/simd_math.cpp"
#include <hwy/foreach_target.h>  // re-includes this file once per target
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

HWY_BEFORE_NAMESPACE();
namespace attnviz::nn::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// The last n < Lanes floats of a row. AVX2 and AVX-512 have masked loads and stores that do not
// touch the lanes outside the mask; Highway 1.0's MaskedLoad on SSE4 and the portable target is a
// full aligned load, which may read past the row (or fault), so those go through a stack buffer.
HWY_INLINE VF LoadTail(DF d, const float* p, size_t n, float fill) {
#if HWY_TARGET <= HWY_AVX2
  const auto m = hn::FirstN(d, n);
  return hn::IfThenElse(m, hn::MaskedLoad(m, d, p), hn::Set(d, fill));
#else
  HWY_ALIGN float buf[HWY_MAX_BYTES / sizeof(float)];
  for (size_t j = 0; j < hn::Lanes(d); ++j) buf[j] = j < n ? p[j] : fill;
  return hn::Load(d, buf);
#endif
}
HWY_INLINE void StoreTail(DF d, VF v, float* p, size_t n) {
#if HWY_TARGET <= HWY_AVX2
  hn::BlendedStore(v, hn::FirstN(d, n), d, p);
#else
  HWY_ALIGN float buf[HWY_MAX_BYTES / sizeof(float)];
  hn::Store(v, d, buf);
  for (size_t j = 0; j < n; ++j) p[j] = buf[j];
#endif
}

// Softmax of one row of n floats in place; a row whose max is -inf becomes zeros.
HWY_INLINE void SoftmaxRow(float* HWY_RESTRICT x, size_t n) {
  const DF d;
  const size_t L = hn::Lanes(d);
  const VF ninf = hn::Set(d, -std::numeric_limits<float>::infinity());
  VF vmax = ninf;
  size_t i = 0;
  for (; i + L <= n; i += L) vmax = hn::Max(vmax, hn::LoadU(d, x + i));
  const size_t rem = n - i;
  if (rem) vmax = hn::Max(vmax, LoadTail(d, x + i, rem, -std::numeric_limits<float>::infinity()));
  const float m = hn::GetLane(hn::MaxOfLanes(d, vmax));
  if (m == -std::numeric_limits<float>::infinity()) {
    for (size_t j = 0; j < n; ++j) x[j] = 0.f;
    return;
  }
  const VF vm = hn::Set(d, m);
  VF vsum = hn::Zero(d);
  for (i = 0; i + L <= n; i += L) {
    const VF e = hn::Exp(d, hn::Sub(hn::LoadU(d, x + i), vm));
    vsum = hn::Add(vsum, e);
    hn::StoreU(e, d, x + i);
  }
  if (rem) {
    // The padding lanes are -inf: exp gives 0 there.
    const VF e = hn::Exp(d, hn::Sub(LoadTail(d, x + i, rem, -std::numeric_limits<float>::infinity()), vm));
    vsum = hn::Add(vsum, e);
    StoreTail(d, e, x + i, rem);
  }
  const VF inv = hn::Set(d, 1.f / hn::GetLane(hn::SumOfLanes(d, vsum)));
  for (i = 0; i + L <= n; i += L) hn::StoreU(hn::Mul(hn::LoadU(d, x + i), inv), d, x + i);
  if (rem) StoreTail(d, hn::Mul(LoadTail(d, x + i, rem, 0.f), inv), x + i, rem);
}

void SoftmaxRows(float* x, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld) {
  for (ptrdiff_t r = 0; r < rows; ++r) SoftmaxRow(x + r * ld, static_cast<size_t>(cols));
}

// GELU y = x Phi(x) and dy/dx = Phi(x) + x phi(x) for one vector. Phi from erfc(|x| / sqrt 2) by
// Abramowitz & Stegun 7.1.26 (|error of erf| <= 1.5e-7): erfc(u) = t (a1 + t (a2 + ... a5 t)) e^(-u^2),
// t = 1 / (1 + p u). Its e^(-u^2) = e^(-x^2 / 2) is also sqrt(2 pi) phi(x), so one exp serves both;
// for x < 0, Phi = erfc / 2 directly (no 1 - erf cancellation in the far left tail).
HWY_INLINE void GeluVec(DF d, VF x, VF& y, VF& dydx) {
  const VF ax = hn::Abs(x);
  const VF e = hn::Exp(d, hn::Mul(hn::Mul(x, x), hn::Set(d, -0.5f)));
  const VF t = hn::Div(hn::Set(d, 1.f), hn::MulAdd(ax, hn::Set(d, 0.3275911f * 0.70710678118654752f), hn::Set(d, 1.f)));
  VF p = hn::Set(d, 1.061405429f);
  p = hn::MulAdd(p, t, hn::Set(d, -1.453152027f));
  p = hn::MulAdd(p, t, hn::Set(d, 1.421413741f));
  p = hn::MulAdd(p, t, hn::Set(d, -0.284496736f));
  p = hn::MulAdd(p, t, hn::Set(d, 0.254829592f));
  const VF half_erfc = hn::Mul(hn::Mul(p, t), hn::Mul(e, hn::Set(d, 0.5f)));   // Phi(-|x|)
  const VF phi_cdf = hn::IfThenElse(hn::Lt(x, hn::Zero(d)), half_erfc, hn::Sub(hn::Set(d, 1.f), half_erfc));
  y = hn::Mul(x, phi_cdf);
  dydx = hn::MulAdd(hn::Mul(x, e), hn::Set(d, 0.3989422804014327f), phi_cdf);
}

void GeluErf(const float* x, float* y, float* dydx, ptrdiff_t n) {
  const DF d;
  const ptrdiff_t L = static_cast<ptrdiff_t>(hn::Lanes(d));
  ptrdiff_t i = 0;
  VF vy, vd;
  for (; i + L <= n; i += L) {
    GeluVec(d, hn::LoadU(d, x + i), vy, vd);
    hn::StoreU(vy, d, y + i);
    if (dydx) hn::StoreU(vd, d, dydx + i);
  }
  if (i < n) {
    const size_t rem = static_cast<size_t>(n - i);
    GeluVec(d, LoadTail(d, x + i, rem, 0.f), vy, vd);
    StoreTail(d, vy, y + i, rem);
    if (dydx) StoreTail(d, vd, dydx + i, rem);
  }
}

}  // namespace attnviz::nn::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace attnviz::nn {

HWY_EXPORT(SoftmaxRows);
HWY_EXPORT(GeluErf);

void softmax_rows(MatMap x) {
  if (x.rows() == 0 || x.cols() == 0) return;
  detail::init_kernel_isa();
  HWY_DYNAMIC_DISPATCH(SoftmaxRows)(x.data(), x.rows(), x.cols(), x.cols());
}

void gelu_erf(const float* x, float* y, float* dydx, Eigen::Index n) {
  if (n <= 0) return;
  detail::init_kernel_isa();
  HWY_DYNAMIC_DISPATCH(GeluErf)(x, y, dydx, n);
}

}  // namespace attnviz::nn
#endif  // HWY_ONCE
