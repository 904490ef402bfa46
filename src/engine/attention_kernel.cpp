// The attention kernel: blocked online-softmax forward, the optional second pass writing exact
// weights, the blocked backward, and the naive reference; SIMD code for AVX-512, AVX2 and a
// portable path in one binary, chosen at run time (Google Highway dynamic dispatch).
//
// Why Highway and not GCC function multi-versioning: target_clones only re-runs the
// auto-vectoriser per ISA, which does not produce the register-tiled micro-kernels below; with
// intrinsics, multi-versioning needs one hand-written body per ISA. Highway compiles this one
// width-agnostic body once per target (this file re-includes itself through foreach_target.h:
// 16 floats per vector on AVX-512, 8 on AVX2, 4 on the portable EMU128 path), picks the widest
// target the CPU supports from CPUID at the first call, and lets tests force a narrower one
// (hwy::DisableTargets), which ATTNVIZ_ISA / set_kernel_isa() use.
#include <attnviz/engine/attention.hpp>
#include <attnviz/engine/ops.hpp>
#include <attnviz/error.hpp>

#include "engine/isa.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef ATTNVIZ_ATTENTION_KERNEL_COMMON
#define ATTNVIZ_ATTENTION_KERNEL_COMMON
namespace attnviz::nn::kernel_detail {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kLog2e = 1.4426950408889634f;

// Tile sizes. A (query tile x key tile) step touches: packed Q [BQ, Dp], K^T [Dp, BK], V [BK, Dp],
// scores [BQ, BK] and the output accumulator [BQ, Dp]: about 100 KiB at BQ = 96, BK = Dp = 64,
// which sits in the 1 MiB L2 with room to spare, while each micro-kernel call streams one
// two-vector column block of K^T or V from L1 for 6-12 query rows. Bigger tiles amortise the
// per-tile softmax rescale (BQ*Dp multiplies per BK keys) but leave fewer work items for the
// threads at small N. The head's K^T and V are packed once per work item.
constexpr int kDefaultQTile = 96;   // a multiple of both micro-kernel heights (6, 12)
constexpr int kDefaultKTile = 64;   // a multiple of every target's micro-kernel width (2 vectors)
constexpr int kMaxLanes = 16;       // floats per vector of the widest target (AVX-512)

inline int round_up(int x, int m) { return (x + m - 1) / m * m; }

struct AlignedBuf {
  float* p = nullptr;
  explicit AlignedBuf(size_t n) {
    const size_t bytes = (std::max<size_t>(n, 16) + 15) / 16 * 16 * sizeof(float);
    p = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (!p) throw std::bad_alloc();
  }
  ~AlignedBuf() { std::free(p); }
  AlignedBuf(const AlignedBuf&) = delete;
  AlignedBuf& operator=(const AlignedBuf&) = delete;
};

struct Geometry {
  int B, H, Nq, Nk, Dh, Dp, ldq, ldk, ldv, ldo, BQ, BK, qtiles;
  int group;   // query heads per K/V head (GQA); K/V head of query head h is h / group
};

// `lanes`: floats per vector of the target that runs (head dims are padded to it).
inline Geometry geometry(const KernelShape& s, const KernelOptions& o, int lanes) {
  if (s.B < 0 || s.H <= 0 || s.Nq < 0 || s.Nk < 0 || s.Dh <= 0)
    throw std::invalid_argument("attention kernel: bad shape");
  Geometry g;
  g.B = s.B; g.H = s.H; g.Nq = s.Nq; g.Nk = s.Nk; g.Dh = s.Dh;
  g.Dp = round_up(s.Dh, lanes);
  const int hkv = s.kv_heads > 0 ? s.kv_heads : s.H;
  if (s.H % hkv != 0) throw std::invalid_argument("attention kernel: heads not a multiple of kv_heads");
  g.group = s.H / hkv;
  g.ldq = s.ldq ? s.ldq : s.H * s.Dh;
  g.ldk = s.ldk ? s.ldk : hkv * s.Dh;
  g.ldv = s.ldv ? s.ldv : hkv * s.Dh;
  g.ldo = s.ldo ? s.ldo : s.H * s.Dh;
  g.BQ = o.q_tile > 0 ? o.q_tile : kDefaultQTile;
  g.BK = round_up(o.k_tile > 0 ? o.k_tile : kDefaultKTile, 2 * kMaxLanes);
  g.qtiles = (s.Nq + g.BQ - 1) / std::max(1, g.BQ);
  return g;
}

// Keys query i of batch b may see: [0, visible(i)).
inline int visible_keys(const Geometry& g, const KernelOptions& o, int b, int i) {
  int n = o.key_lengths ? std::clamp(o.key_lengths[b], 0, g.Nk) : g.Nk;
  if (o.causal) n = std::min(n, i + 1);
  return n;
}

// One forward work item: (batch, head, chunk of query tiles) and the calling thread's buffers.
struct ForwardArgs {
  const float *q, *k, *v;
  float* out;
  const KernelOptions* opt;
  Geometry g;
  int chunks;
  float *qp, *kpack, *vpack, *sc, *acc, *mrow, *lrow, *lvec;
};

// One backward work item: (batch, head) and the calling thread's buffers (all O(N Dp)).
struct BackwardArgs {
  const float *q, *k, *v, *out, *dout, *lse;
  float *dq, *dk, *dv;
  const KernelOptions* opt;
  Geometry g;
  int nkp;   // Nk rounded up to BK
  float *qs, *dop, *kt, *kp, *vt, *dvec, *dqacc, *sc, *dp, *tr, *dkj, *dvj;
};

}  // namespace attnviz::nn::kernel_detail
#endif  // ATTNVIZ_ATTENTION_KERNEL_COMMON

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "engine/attention_kernel.cpp"
#include <hwy/foreach_target.h>  // re-includes this file once per target
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace attnviz::nn::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using namespace kernel_detail;

using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;
constexpr int kL = static_cast<int>(HWY_LANES(float));   // floats per vector
// Micro-kernel: kMR rows x kNW vectors of accumulators, plus kNW operand vectors and one
// broadcast, must fit the register file. AVX-512 (32 registers): 6 x 4 (24 accumulators; per
// step 4 vector loads and 6 broadcasts feed 24 FMAs, and one call covers a whole 64-wide tile
// row); AVX2 and SSE (16 registers): 6 x 2.
#if HWY_TARGET <= HWY_AVX3
constexpr int kMR = 6;
constexpr int kNW = 4;
#else
constexpr int kMR = 6;
constexpr int kNW = 2;
#endif
constexpr int kNR = 2 * kL;   // column padding unit of the tiles: two vectors

int Lanes() { return kL; }
int64_t Target() { return HWY_TARGET; }

// 2^x for x <= 0 (clamped at -126): x = n + f, f in [-0.5, 0.5], 2^f by a degree-6 polynomial
// (relative error ~2e-8), times 2^n: one VSCALEFPS on AVX-512, elsewhere by building the
// exponent bits (convert, add the bias, shift, multiply).
HWY_INLINE V Exp2(V x) {
  const D d;
  x = hn::Max(x, hn::Set(d, -126.f));
  const V n = hn::Round(x);
  const V f = hn::Sub(x, n);
  V p = hn::Set(d, 1.535336188319500e-4f);
  p = hn::MulAdd(p, f, hn::Set(d, 1.339887440266574e-3f));
  p = hn::MulAdd(p, f, hn::Set(d, 9.618437357674640e-3f));
  p = hn::MulAdd(p, f, hn::Set(d, 5.550332471162809e-2f));
  p = hn::MulAdd(p, f, hn::Set(d, 2.402264791363012e-1f));
  p = hn::MulAdd(p, f, hn::Set(d, 6.931472028550421e-1f));
  p = hn::MulAdd(p, f, hn::Set(d, 1.0f));
#if HWY_TARGET <= HWY_AVX3
  return V{_mm512_scalef_ps(p.raw, n.raw)};
#else
  const hn::RebindToSigned<D> di;
  const auto e = hn::ShiftLeft<23>(hn::Add(hn::ConvertTo(di, n), hn::Set(di, 127)));
  return hn::Mul(p, hn::BitCast(d, e));
#endif
}

// The micro-kernel keeps its R*W accumulators in named variables rather than arrays: with
// arrays GCC 12 spills every accumulator to the stack on each iteration (store-bound, ~2x slower).
#define ATTNVIZ_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)

// The micro-kernel's default epilogue: store the rows as computed.
struct NoEpilogue {
  HWY_INLINE void operator()(int, V&, V&, V&, V&) const {}
};

// C[R, W vectors] (= or +=) A[R, K] . B[K, W vectors]; row strides lda, ldb, ldc (floats).
// A is read one scalar at a time (broadcast), B and C a vector at a time. Before row r is stored,
// epi(r, c_r0, c_r1, c_r2, c_r3) may change its vectors in registers (the forward's softmax).
template <int R, int W, bool kAcc, class Epilogue = NoEpilogue>
HWY_INLINE void MicroKernel(const float* HWY_RESTRICT a, int lda, const float* HWY_RESTRICT b, int ldb, int K,
                            float* HWY_RESTRICT c, int ldc, const Epilogue& epi = {}) {
  static_assert(R >= 1 && R <= 6 && W >= 1 && W <= 4);
  const D d;
#define DECL(r)                                                                                      \
  V c##r##0 = (kAcc && R > r) ? hn::LoadU(d, c + r * ldc) : hn::Zero(d);                             \
  V c##r##1 = (kAcc && R > r && W > 1) ? hn::LoadU(d, c + r * ldc + kL) : hn::Zero(d);               \
  V c##r##2 = (kAcc && R > r && W > 2) ? hn::LoadU(d, c + r * ldc + 2 * kL) : hn::Zero(d);           \
  V c##r##3 = (kAcc && R > r && W > 3) ? hn::LoadU(d, c + r * ldc + 3 * kL) : hn::Zero(d);
  ATTNVIZ_ROWS(DECL)
#undef DECL
  for (int k = 0; k < K; ++k) {
    const V b0 = hn::LoadU(d, b + k * ldb);
    const V b1 = W > 1 ? hn::LoadU(d, b + k * ldb + kL) : b0;
    const V b2 = W > 2 ? hn::LoadU(d, b + k * ldb + 2 * kL) : b0;
    const V b3 = W > 3 ? hn::LoadU(d, b + k * ldb + 3 * kL) : b0;
#define STEP(r)                                                  \
  if constexpr (R > r) {                                         \
    const V ar = hn::Set(d, a[r * lda + k]);                     \
    c##r##0 = hn::MulAdd(ar, b0, c##r##0);                       \
    if constexpr (W > 1) c##r##1 = hn::MulAdd(ar, b1, c##r##1);  \
    if constexpr (W > 2) c##r##2 = hn::MulAdd(ar, b2, c##r##2);  \
    if constexpr (W > 3) c##r##3 = hn::MulAdd(ar, b3, c##r##3);  \
  }
    ATTNVIZ_ROWS(STEP)
#undef STEP
  }
#define STORE(r)                                                                \
  if constexpr (R > r) {                                                        \
    epi(r, c##r##0, c##r##1, c##r##2, c##r##3);                                 \
    hn::StoreU(c##r##0, d, c + r * ldc);                                        \
    if constexpr (W > 1) hn::StoreU(c##r##1, d, c + r * ldc + kL);              \
    if constexpr (W > 2) hn::StoreU(c##r##2, d, c + r * ldc + 2 * kL);          \
    if constexpr (W > 3) hn::StoreU(c##r##3, d, c + r * ldc + 3 * kL);          \
  }
  ATTNVIZ_ROWS(STORE)
#undef STORE
}
#undef ATTNVIZ_ROWS

// C[R, cols] for cols a multiple of kL: kNW-vector blocks, then one block of the rest.
template <int R, bool kAcc>
HWY_INLINE void GemmRows(const float* a, int lda, const float* b, int ldb, int K, int cols, float* c, int ldc) {
  int j = 0;
  for (; j + kNW * kL <= cols; j += kNW * kL) MicroKernel<R, kNW, kAcc>(a, lda, b + j, ldb, K, c + j, ldc);
  switch ((cols - j) / kL) {
    case 3: if constexpr (kNW > 3) MicroKernel<R, 3, kAcc>(a, lda, b + j, ldb, K, c + j, ldc); break;
    case 2: if constexpr (kNW > 2) MicroKernel<R, 2, kAcc>(a, lda, b + j, ldb, K, c + j, ldc); break;
    case 1: MicroKernel<R, 1, kAcc>(a, lda, b + j, ldb, K, c + j, ldc); break;
    default: break;
  }
}

// Calls f.template operator()<R>() for R = rem (1 <= rem < kMR), R known at compile time.
template <int R, class F>
HWY_INLINE void DispatchRows(int rem, F&& f) {
  if constexpr (R > 0) {
    if (rem == R) f.template operator()<R>();
    else DispatchRows<R - 1>(rem, f);
  }
}

// C[rows, cols] (= or +=) A[rows, K] . B[K, cols]; cols a multiple of kL.
template <bool kAcc>
void Gemm(const float* a, int lda, const float* b, int ldb, int K, int rows, int cols, float* c, int ldc) {
  int r = 0;
  for (; r + kMR <= rows; r += kMR) GemmRows<kMR, kAcc>(a + r * lda, lda, b, ldb, K, cols, c + r * ldc, ldc);
  if (r < rows)
    DispatchRows<kMR - 1>(rows - r, [&]<int R>() { GemmRows<R, kAcc>(a + r * lda, lda, b, ldb, K, cols, c + r * ldc, ldc); });
}

// e^(s - m) as 2^((s - m) log2 e). Subtract first, then scale: s - m is (nearly) exact, so large
// logits keep full accuracy (folding log2 e into the packed query instead saves this multiply
// but rounds every query element once more, which costs accuracy on logits in the hundreds).
HWY_INLINE V ExpDiff(V s, V vm) { return Exp2(hn::Mul(hn::Sub(s, vm), hn::Set(D(), kLog2e))); }

// s[j] = e^(s[j] - m) for j < n (n a multiple of kL).
HWY_INLINE void ExpRow(float* s, int n, float m) {
  const D d;
  const V vm = hn::Set(d, m);
  for (int j = 0; j < n; j += kL) hn::StoreU(ExpDiff(hn::LoadU(d, s + j), vm), d, s + j);
}

// The online softmax's max step for one row: vmax holds the lane-wise max of the row's visible
// scores in this tile. When some lane beats the running max m (usually none does: one vector
// compare, no horizontal reduction), m becomes the tile's max and the accumulator row o [Dp] and
// the partial sums are rescaled by e^(m_old - m_new). Returns the partial sums lv [kL].
HWY_INLINE V RaiseMax(V vmax, float& m, const float* HWY_RESTRICT lv, float* HWY_RESTRICT o, int Dp) {
  const D d;
  V vl = hn::Load(d, lv);
  if (!hn::AllFalse(d, hn::Gt(vmax, hn::Set(d, m)))) {
    const float mt = hn::GetLane(hn::MaxOfLanes(d, vmax));
    // e^(m - mt) is 0 in exact arithmetic when m = -inf (Exp2 gives 2^-126); o and lv are 0 then.
    const V a = ExpDiff(hn::Set(d, m), hn::Set(d, mt));
    for (int c = 0; c < Dp; c += kL) hn::StoreU(hn::Mul(hn::LoadU(d, o + c), a), d, o + c);
    vl = hn::Mul(vl, a);
    m = mt;
  }
  return vl;
}

// One query row of a (query tile x key tile) step of the forward's online softmax. Keys
// [vis, kpad) of the scores s[0, kpad) are masked (vis >= 1). Raises the row's running max m
// when this tile holds a larger score, rescaling the accumulator row o [Dp] and the lane-wise
// partial sums lv [kL] by e^(m_old - m_new); then leaves P = e^(s - m) in s (0 for masked keys)
// and adds it to lv. The sums stay one vector per row until the end of the row, so no horizontal sum runs
// per tile, and the max needs a horizontal reduction only when it rises.
HWY_INLINE void SoftmaxRow(float* HWY_RESTRICT s, int kpad, int vis, float& m, float* HWY_RESTRICT lv,
                           float* HWY_RESTRICT o, int Dp) {
  const D d;
  const V ninf = hn::Set(d, kNegInf);
  V vmax = ninf;
  int j = 0;
  for (; j + kL <= vis; j += kL) vmax = hn::Max(vmax, hn::LoadU(d, s + j));
  if (j < vis) vmax = hn::Max(vmax, hn::IfThenElse(hn::FirstN(d, vis - j), hn::LoadU(d, s + j), ninf));
  V vl = RaiseMax(vmax, m, lv, o, Dp);
  const V vm = hn::Set(d, m);
  j = 0;
  for (; j + kL <= vis; j += kL) {
    const V e = ExpDiff(hn::LoadU(d, s + j), vm);
    hn::StoreU(e, d, s + j);
    vl = hn::Add(vl, e);
  }
  if (j < vis) {
    const V e = hn::IfThenElseZero(hn::FirstN(d, vis - j), ExpDiff(hn::LoadU(d, s + j), vm));
    hn::StoreU(e, d, s + j);
    vl = hn::Add(vl, e);
    j += kL;
  }
  for (; j < kpad; j += kL) hn::StoreU(hn::Zero(d), d, s + j);
  hn::Store(vl, d, lv);
}

#if HWY_TARGET <= HWY_AVX3
// The online-softmax update of one row whose 64 scores of a fully visible tile are in the four
// vectors s0..s3 (AVX-512 only: there one micro-kernel call holds a whole 64-key tile row).
// Same steps and results as SoftmaxRow, without storing and reloading the scores.
HWY_INLINE void SoftmaxRegs(V& s0, V& s1, V& s2, V& s3, float& m, float* HWY_RESTRICT lv, float* HWY_RESTRICT o,
                            int Dp) {
  const D d;
  const V vl = RaiseMax(hn::Max(hn::Max(s0, s1), hn::Max(s2, s3)), m, lv, o, Dp);
  const V vm = hn::Set(d, m);
  s0 = ExpDiff(s0, vm);
  s1 = ExpDiff(s1, vm);
  s2 = ExpDiff(s2, vm);
  s3 = ExpDiff(s3, vm);
  hn::Store(hn::Add(vl, hn::Add(hn::Add(s0, s1), hn::Add(s2, s3))), d, lv);
}
#endif

void ForwardItem(const ForwardArgs& A, long item) {
  const Geometry& g = A.g;
  const KernelOptions& opt = *A.opt;
  const int BQ = g.BQ, BK = g.BK, Dp = g.Dp, Dh = g.Dh, chunks = A.chunks;
  const int chunk = static_cast<int>(item % chunks);
  const int h = static_cast<int>((item / chunks) % g.H);
  const int b = static_cast<int>(item / (static_cast<long>(chunks) * g.H));
  const int qt0 = static_cast<int>(static_cast<long>(g.qtiles) * chunk / chunks);
  const int qt1 = static_cast<int>(static_cast<long>(g.qtiles) * (chunk + 1) / chunks);
  if (qt1 <= qt0) return;
  const float* kb = A.k + static_cast<size_t>(b) * g.Nk * g.ldk + static_cast<size_t>(h / g.group) * Dh;
  const float* vb = A.v + static_cast<size_t>(b) * g.Nk * g.ldv + static_cast<size_t>(h / g.group) * Dh;
  float *qp = A.qp, *kpack = A.kpack, *vpack = A.vpack, *sc = A.sc, *acc = A.acc, *mrow = A.mrow, *lrow = A.lrow,
        *lvec = A.lvec;

  // Pack the keys this chunk may see: K^T as [Dp, BK] blocks and V as [BK, Dp] blocks, one
  // pair per key tile, zero-padded.
  int kmax = 0;
  for (int i = qt0 * BQ; i < std::min(g.Nq, qt1 * BQ); ++i) kmax = std::max(kmax, visible_keys(g, opt, b, i));
  for (int t = 0; t * BK < kmax; ++t) {
    float* kt = kpack + static_cast<size_t>(t) * Dp * BK;
    float* vt = vpack + static_cast<size_t>(t) * BK * Dp;
    const int kc = std::min(BK, kmax - t * BK), kpad = round_up(kc, kNR);
    for (int j = 0; j < kc; ++j) {
      const float* kr = kb + static_cast<size_t>(t * BK + j) * g.ldk;
      for (int c = 0; c < Dh; ++c) kt[static_cast<size_t>(c) * BK + j] = kr[c];
      const float* vr = vb + static_cast<size_t>(t * BK + j) * g.ldv;
      float* vd = vt + static_cast<size_t>(j) * Dp;
      std::memcpy(vd, vr, sizeof(float) * Dh);
      for (int c = Dh; c < Dp; ++c) vd[c] = 0.f;
    }
    for (int c = 0; c < Dp; ++c)
      for (int j = (c < Dh ? kc : 0); j < kpad; ++j) kt[static_cast<size_t>(c) * BK + j] = 0.f;
  }

  for (int qt = qt0; qt < qt1; ++qt) {
    const int i0 = qt * BQ, rows = std::min(BQ, g.Nq - i0);
    const float* qb = A.q + (static_cast<size_t>(b) * g.Nq + i0) * g.ldq + static_cast<size_t>(h) * Dh;
    // Pack the query tile (scaled, zero-padded to Dp) and reset the running statistics.
    for (int r = 0; r < rows; ++r) {
      float* dst = qp + static_cast<size_t>(r) * Dp;
      for (int c = 0; c < Dh; ++c) dst[c] = qb[static_cast<size_t>(r) * g.ldq + c] * opt.scale;
      for (int c = Dh; c < Dp; ++c) dst[c] = 0.f;
      mrow[r] = kNegInf;
    }
    std::memset(lvec, 0, sizeof(float) * static_cast<size_t>(rows) * kL);
    std::memset(acc, 0, sizeof(float) * static_cast<size_t>(rows) * Dp);
    int kend = 0, kall = g.Nk;   // keys any row / every row of this tile may see
    for (int r = 0; r < rows; ++r) {
      const int vis = visible_keys(g, opt, b, i0 + r);
      kend = std::max(kend, vis);
      kall = std::min(kall, vis);
    }

    for (int j0 = 0; j0 < kend; j0 += BK) {
      const int kc = std::min(BK, kend - j0), kpad = round_up(kc, kNR);
      const float* kt = kpack + static_cast<size_t>(j0 / BK) * Dp * BK;
      const float* vt = vpack + static_cast<size_t>(j0 / BK) * BK * Dp;
#if HWY_TARGET <= HWY_AVX3
      // A whole 64-key tile that every row sees: one micro-kernel call holds a row's 64 scores,
      // and the softmax runs on them in registers (SoftmaxRegs as its epilogue), so P is stored
      // instead of S.
      if (kc == kNW * kL && BK == kc && j0 + kc <= kall) {
        auto block = [&]<int R>(int r0) {
          const auto softmax = [&](int r, V& s0, V& s1, V& s2, V& s3) {
            const size_t row = static_cast<size_t>(r0 + r);
            SoftmaxRegs(s0, s1, s2, s3, mrow[row], lvec + row * kL, acc + row * Dp, Dp);
          };
          MicroKernel<R, kNW, false>(qp + static_cast<size_t>(r0) * Dp, Dp, kt, BK, Dp, sc + static_cast<size_t>(r0) * BK,
                                     BK, softmax);
        };
        int r0 = 0;
        for (; r0 + kMR <= rows; r0 += kMR) block.template operator()<kMR>(r0);
        if (r0 < rows) DispatchRows<kMR - 1>(rows - r0, [&]<int R>() { block.template operator()<R>(r0); });
        Gemm<true>(sc, BK, vt, Dp, kc, rows, Dp, acc, Dp);
        continue;
      }
#endif
      // S = Qs K^T for this tile pair. (Running the three steps per block of micro-kernel rows
      // instead, so the exponentials sit between the FMAs of the same rows, measured 5% slower:
      // the K^T and V tiles then compete for L1.)
      Gemm<false>(qp, Dp, kt, BK, Dp, rows, kpad, sc, BK);
      // Online softmax, row by row.
      for (int r = 0; r < rows; ++r) {
        float* s = sc + static_cast<size_t>(r) * BK;
        const int vis = std::min(kc, visible_keys(g, opt, b, i0 + r) - j0);   // visible in tile
        if (vis <= 0) {
          std::memset(s, 0, sizeof(float) * kc);
          continue;
        }
        SoftmaxRow(s, kpad, vis, mrow[r], lvec + static_cast<size_t>(r) * kL, acc + static_cast<size_t>(r) * Dp, Dp);
      }
      // O += P V
      Gemm<true>(sc, BK, vt, Dp, kc, rows, Dp, acc, Dp);
    }

    // Normalise and write out; rows that saw no key get zeros.
    for (int r = 0; r < rows; ++r) {
      lrow[r] = hn::GetLane(hn::SumOfLanes(D(), hn::Load(D(), lvec + static_cast<size_t>(r) * kL)));
      float* o = A.out + (static_cast<size_t>(b) * g.Nq + i0 + r) * g.ldo + static_cast<size_t>(h) * Dh;
      const float l = lrow[r];
      const float inv = l > 0.f ? 1.f / l : 0.f;
      const float* a = acc + static_cast<size_t>(r) * Dp;
      for (int c = 0; c < Dh; ++c) o[c] = a[c] * inv;
      if (opt.lse)
        opt.lse[(static_cast<size_t>(b) * g.H + h) * g.Nq + i0 + r] = l > 0.f ? mrow[r] + std::log(l) : kNegInf;
    }

    // Second pass (only when weights are requested): recompute the scores tile by tile and
    // write exp(s - m) / l, now that each row's final max and sum are known.
    if (opt.weights) {
      for (int j0 = 0; j0 < g.Nk; j0 += BK) {
        const int kc = std::min(BK, g.Nk - j0), kpad = round_up(kc, kNR);
        const bool any = j0 < kend;
        if (any) Gemm<false>(qp, Dp, kpack + static_cast<size_t>(j0 / BK) * Dp * BK, BK, Dp, rows, kpad, sc, BK);
        for (int r = 0; r < rows; ++r) {
          float* w = opt.weights + ((static_cast<size_t>(b) * g.H + h) * g.Nq + i0 + r) * g.Nk + j0;
          const int vis = any ? std::min(kc, visible_keys(g, opt, b, i0 + r) - j0) : 0;
          const float l = lrow[r];
          if (vis <= 0 || !(l > 0.f)) {
            std::memset(w, 0, sizeof(float) * kc);
            continue;
          }
          float* s = sc + static_cast<size_t>(r) * BK;
          ExpRow(s, kpad, mrow[r]);
          const float inv = 1.f / l;
          for (int j = 0; j < vis; ++j) w[j] = s[j] * inv;
          for (int j = vis; j < kc; ++j) w[j] = 0.f;
        }
      }
    }
  }
}

// dst[c, r] = src[r, c] for r < rows, c < cols (row strides lds, ldd).
inline void Transpose(const float* src, int lds, int rows, int cols, float* dst, int ldd) {
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) dst[static_cast<size_t>(c) * ldd + r] = src[static_cast<size_t>(r) * lds + c];
}

// Gradients for one (batch, head), blocked as the forward: per key tile j (dK_j, dV_j kept in
// buffers), per query tile i:
//   S = Qs K_j^T (Qs = scale q), P = exp(S - lse) (0 where masked), dV_j += P^T dO_i,
//   dP = dO_i V_j^T, dS = P * (dP - D_i) with D = rowsum(dO * O),
//   dK_j += dS^T Qs_i (= scale dS^T Q), dQ_i += dS K_j (scaled once at the end).
// Every sum runs in a fixed order, so results are bitwise identical for any thread count.
void BackwardItem(const BackwardArgs& A, long bh) {
  const Geometry& g = A.g;
  const KernelOptions& opt = *A.opt;
  const int BQ = g.BQ, BK = g.BK, Dp = g.Dp, Dh = g.Dh, Nq = g.Nq, Nk = g.Nk, nkp = A.nkp;
  const int b = static_cast<int>(bh / g.H), h = static_cast<int>(bh % g.H);
  const size_t hq = static_cast<size_t>(h) * Dh;
  const float* l = A.lse + (static_cast<size_t>(b) * g.H + h) * Nq;
  const D d;

  // Pack: Qs, dO [Nq, Dp]; K [Nk, Dp]; K^T, V^T [Dp, nkp]; D [Nq]; dQ accumulator [Nq, Dp].
  for (int i = 0; i < Nq; ++i) {
    const float* qr = A.q + (static_cast<size_t>(b) * Nq + i) * g.ldq + hq;
    const float* orow = A.out + (static_cast<size_t>(b) * Nq + i) * g.ldo + hq;
    const float* dorow = A.dout + (static_cast<size_t>(b) * Nq + i) * g.ldo + hq;
    float* qs = A.qs + static_cast<size_t>(i) * Dp;
    float* dop = A.dop + static_cast<size_t>(i) * Dp;
    float dsum = 0.f;
    for (int c = 0; c < Dh; ++c) {
      qs[c] = qr[c] * opt.scale;
      dop[c] = dorow[c];
      dsum += dorow[c] * orow[c];
    }
    for (int c = Dh; c < Dp; ++c) qs[c] = dop[c] = 0.f;
    A.dvec[i] = dsum;
  }
  std::memset(A.dqacc, 0, sizeof(float) * static_cast<size_t>(Nq) * Dp);
  std::memset(A.kt, 0, sizeof(float) * static_cast<size_t>(Dp) * nkp);
  std::memset(A.vt, 0, sizeof(float) * static_cast<size_t>(Dp) * nkp);
  std::memset(A.kp, 0, sizeof(float) * static_cast<size_t>(nkp) * Dp);
  for (int j = 0; j < Nk; ++j) {
    const float* kr = A.k + (static_cast<size_t>(b) * Nk + j) * g.ldk + hq;
    const float* vr = A.v + (static_cast<size_t>(b) * Nk + j) * g.ldv + hq;
    for (int c = 0; c < Dh; ++c) {
      A.kt[static_cast<size_t>(c) * nkp + j] = kr[c];
      A.vt[static_cast<size_t>(c) * nkp + j] = vr[c];
      A.kp[static_cast<size_t>(j) * Dp + c] = kr[c];
    }
  }

  for (int j0 = 0; j0 < Nk; j0 += BK) {
    const int kc = std::min(BK, Nk - j0), kpad = round_up(kc, kNR);
    std::memset(A.dkj, 0, sizeof(float) * static_cast<size_t>(BK) * Dp);
    std::memset(A.dvj, 0, sizeof(float) * static_cast<size_t>(BK) * Dp);
    for (int i0 = 0; i0 < Nq; i0 += BQ) {
      const int rows = std::min(BQ, Nq - i0);
      // Skip the tile pair when no row sees a key of this tile (causal, padding).
      int kend = 0;
      for (int r = 0; r < rows; ++r)
        if (l[i0 + r] > kNegInf) kend = std::max(kend, visible_keys(g, opt, b, i0 + r));
      if (kend <= j0) continue;
      const float* qs = A.qs + static_cast<size_t>(i0) * Dp;
      const float* dop = A.dop + static_cast<size_t>(i0) * Dp;
      // S = Qs_i K_j^T, then P = exp(S - lse) in place.
      Gemm<false>(qs, Dp, A.kt + j0, nkp, Dp, rows, kpad, A.sc, BK);
      for (int r = 0; r < rows; ++r) {
        float* p = A.sc + static_cast<size_t>(r) * BK;
        const int vis = l[i0 + r] > kNegInf ? std::clamp(visible_keys(g, opt, b, i0 + r) - j0, 0, kc) : 0;
        if (vis > 0) ExpRow(p, kpad, l[i0 + r]);
        for (int j = vis; j < kpad; ++j) p[j] = 0.f;
      }
      // dV_j += P^T dO_i
      Transpose(A.sc, BK, rows, kc, A.tr, BQ);
      Gemm<true>(A.tr, BQ, dop, Dp, rows, kc, Dp, A.dvj, Dp);
      // dP = dO_i V_j^T; dS = P * (dP - D_i)
      Gemm<false>(dop, Dp, A.vt + j0, nkp, Dp, rows, kpad, A.dp, BK);
      for (int r = 0; r < rows; ++r) {
        const float* p = A.sc + static_cast<size_t>(r) * BK;
        float* ds = A.dp + static_cast<size_t>(r) * BK;
        const V dr = hn::Set(d, A.dvec[i0 + r]);
        for (int j = 0; j < kpad; j += kL)
          hn::StoreU(hn::Mul(hn::LoadU(d, p + j), hn::Sub(hn::LoadU(d, ds + j), dr)), d, ds + j);
      }
      // dK_j += dS^T Qs_i
      Transpose(A.dp, BK, rows, kc, A.tr, BQ);
      Gemm<true>(A.tr, BQ, qs, Dp, rows, kc, Dp, A.dkj, Dp);
      // dQ_i += dS K_j
      Gemm<true>(A.dp, BK, A.kp + static_cast<size_t>(j0) * Dp, Dp, kc, rows, Dp,
                 A.dqacc + static_cast<size_t>(i0) * Dp, Dp);
    }
    for (int j = 0; j < kc; ++j) {
      float* dkr = A.dk + (static_cast<size_t>(b) * Nk + j0 + j) * g.ldk + hq;
      float* dvr = A.dv + (static_cast<size_t>(b) * Nk + j0 + j) * g.ldv + hq;
      std::memcpy(dkr, A.dkj + static_cast<size_t>(j) * Dp, sizeof(float) * Dh);
      std::memcpy(dvr, A.dvj + static_cast<size_t>(j) * Dp, sizeof(float) * Dh);
    }
  }
  for (int i = 0; i < Nq; ++i) {
    float* dqr = A.dq + (static_cast<size_t>(b) * Nq + i) * g.ldq + hq;
    const float* a = A.dqacc + static_cast<size_t>(i) * Dp;
    for (int c = 0; c < Dh; ++c) dqr[c] = a[c] * opt.scale;
  }
}

}  // namespace attnviz::nn::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace attnviz::nn {

using namespace kernel_detail;

HWY_EXPORT(Lanes);
HWY_EXPORT(Target);
HWY_EXPORT(ForwardItem);
HWY_EXPORT(BackwardItem);

namespace {

// Highway target bits ruled out for each ATTNVIZ_ISA value.
int64_t disabled_for(const std::string& isa) {
  const int64_t avx512 = HWY_AVX3 | HWY_AVX3_DL, avx2 = HWY_AVX2, sse = HWY_SSE4 | HWY_SSSE3;
  if (isa == "best" || isa == "avx512") return 0;
  if (isa == "avx2") return avx512;
  if (isa == "sse4") return avx512 | avx2;
  if (isa == "portable") return avx512 | avx2 | sse;
  throw UsageError("kernel ISA must be one of best, avx512, avx2, sse4, portable; got '" + isa + "'");
}

std::once_flag g_isa_once;

}  // namespace

// Applies ATTNVIZ_ISA (if set) once, before the first kernel call (of any dispatched kernel).
void detail::init_kernel_isa() {
  std::call_once(g_isa_once, [] {
    if (const char* e = std::getenv("ATTNVIZ_ISA"); e && *e) {
      try {
        hwy::DisableTargets(disabled_for(e));
      } catch (const UsageError& err) {
        throw UsageError(std::string("environment variable ATTNVIZ_ISA: ") + err.what());
      }
    }
  });
}

namespace {

int lanes() {
  detail::init_kernel_isa();
  return HWY_DYNAMIC_DISPATCH(Lanes)();
}

}  // namespace

void set_kernel_isa(const std::string& isa) {
  detail::init_kernel_isa();
  hwy::DisableTargets(disabled_for(isa));
}

std::string kernel_isa() {
  detail::init_kernel_isa();
  const int64_t t = HWY_DYNAMIC_DISPATCH(Target)();
  if (t == HWY_AVX3 || t == HWY_AVX3_DL) return "avx512";
  if (t == HWY_AVX2) return "avx2";
  if (t == HWY_SSE4) return "sse4";
  if (t == HWY_SSSE3) return "ssse3";
  return "portable";
}

size_t attention_blocked_workspace_bytes(const KernelShape& shape, const KernelOptions& opt) {
  Geometry g = geometry(shape, opt, kMaxLanes);
  int t = opt.threads > 0 ? opt.threads : threads();
  const size_t ktiles = std::max(1, (g.Nk + g.BK - 1) / g.BK);
  // Per thread: packed Q tile, the head's packed K^T and V (O(N d)), scores, accumulator, stats.
  size_t per = static_cast<size_t>(g.BQ) * g.Dp + 2 * ktiles * g.BK * g.Dp + static_cast<size_t>(g.BQ) * g.BK +
               static_cast<size_t>(g.BQ) * g.Dp + 2 * g.BQ + static_cast<size_t>(g.BQ) * kMaxLanes + 8 * 16;
  return per * sizeof(float) * t;
}

void attention_blocked(const float* q, const float* k, const float* v, float* out,
                       const KernelShape& shape, const KernelOptions& opt) {
  const Geometry g = geometry(shape, opt, lanes());
  const int BQ = g.BQ, BK = g.BK, Dp = g.Dp;
  const int ktiles = std::max(1, (g.Nk + BK - 1) / BK);
  // Tiny problems (a few microseconds of work) run on the calling thread: waking the team costs more.
  const double work = static_cast<double>(g.B) * g.H * g.Nq * g.Nk * g.Dh;
  const long bh_count = static_cast<long>(g.B) * g.H;
  int nthreads = work < 2e5 ? 1 : (opt.threads > 0 ? opt.threads : threads());
  // Work items: (batch, head, chunk of query tiles). Each item packs its head's K^T and V once and
  // reuses them for all its query tiles; chunks only split a head when there are too few heads
  // to keep every thread busy.
  const int chunks = static_cast<int>(std::clamp<long>((4L * nthreads + bh_count - 1) / std::max(1L, bh_count), 1L,
                                                       std::max(1, g.qtiles)));
  const long items = bh_count * chunks;
  if (items < 2) nthreads = 1;
  const auto forward_item = HWY_DYNAMIC_DISPATCH(ForwardItem);

#pragma omp parallel num_threads(nthreads)
  {
    AlignedBuf qp(static_cast<size_t>(BQ) * Dp), kpack(static_cast<size_t>(ktiles) * Dp * BK),
        vpack(static_cast<size_t>(ktiles) * BK * Dp), sc(static_cast<size_t>(BQ) * BK),
        acc(static_cast<size_t>(BQ) * Dp), mrow(BQ), lrow(BQ), lvec(static_cast<size_t>(BQ) * kMaxLanes);
    const ForwardArgs args{q, k, v, out, &opt, g, chunks, qp.p, kpack.p, vpack.p, sc.p, acc.p, mrow.p, lrow.p, lvec.p};
#pragma omp for schedule(dynamic, 1)
    for (long item = 0; item < items; ++item) forward_item(args, item);
  }
}

void attention_naive(const float* q, const float* k, const float* v, float* out,
                     const KernelShape& shape, const KernelOptions& opt) {
  const Geometry g = geometry(shape, opt, 1);
  const int nthreads = opt.threads > 0 ? opt.threads : threads();
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<double> s(static_cast<size_t>(g.Nk));
#pragma omp for schedule(static)
    for (long bh = 0; bh < static_cast<long>(g.B) * g.H; ++bh) {
      const int b = static_cast<int>(bh / g.H), h = static_cast<int>(bh % g.H);
      for (int i = 0; i < g.Nq; ++i) {
        const float* qi = q + (static_cast<size_t>(b) * g.Nq + i) * g.ldq + static_cast<size_t>(h) * g.Dh;
        float* oi = out + (static_cast<size_t>(b) * g.Nq + i) * g.ldo + static_cast<size_t>(h) * g.Dh;
        float* wi = opt.weights ? opt.weights + ((static_cast<size_t>(b) * g.H + h) * g.Nq + i) * g.Nk : nullptr;
        const int vis = visible_keys(g, opt, b, i);
        // Pass 1: logits and their max.
        double m = -std::numeric_limits<double>::infinity();
        for (int j = 0; j < vis; ++j) {
          const float* kj = k + (static_cast<size_t>(b) * g.Nk + j) * g.ldk + static_cast<size_t>(h / g.group) * g.Dh;
          double d = 0;
          for (int c = 0; c < g.Dh; ++c) d += static_cast<double>(qi[c]) * kj[c];
          s[j] = d * opt.scale;
          m = std::max(m, s[j]);
        }
        // Pass 2: exponentials, sum, normalise.
        double sum = 0;
        for (int j = 0; j < vis; ++j) sum += (s[j] = std::exp(s[j] - m));
        for (int c = 0; c < g.Dh; ++c) oi[c] = 0.f;
        if (wi) std::fill(wi, wi + g.Nk, 0.f);
        if (opt.lse) opt.lse[(static_cast<size_t>(b) * g.H + h) * g.Nq + i] = vis > 0 ? static_cast<float>(m + std::log(sum)) : kNegInf;
        if (vis == 0) continue;
        std::vector<double> o(static_cast<size_t>(g.Dh), 0.0);
        for (int j = 0; j < vis; ++j) {
          const double w = s[j] / sum;
          if (wi) wi[j] = static_cast<float>(w);
          const float* vj = v + (static_cast<size_t>(b) * g.Nk + j) * g.ldv + static_cast<size_t>(h / g.group) * g.Dh;
          for (int c = 0; c < g.Dh; ++c) o[c] += w * vj[c];
        }
        for (int c = 0; c < g.Dh; ++c) oi[c] = static_cast<float>(o[c]);
      }
    }
  }
}

void attention_backward(const float* q, const float* k, const float* v, const float* out,
                        const float* dout, const float* lse, float* dq, float* dk, float* dv,
                        const KernelShape& shape, const KernelOptions& opt) {
  const Geometry g = geometry(shape, opt, lanes());
  // Shared K/V heads would need a reduction of dK/dV across threads: backward is for MHA only.
  if (g.group != 1) throw std::invalid_argument("attention_backward: grouped-query attention is forward-only");
  const int nthreads = opt.threads > 0 ? opt.threads : threads();
  const long items = static_cast<long>(g.B) * g.H;
  const int t = static_cast<double>(items) * g.Nq * g.Nk * g.Dh < 2e5 || items < 2 ? 1 : nthreads;
  const int BQ = g.BQ, BK = g.BK, Dp = g.Dp;
  const int nkp = round_up(std::max(1, g.Nk), BK);
  const size_t nq = static_cast<size_t>(std::max(1, g.Nq));
  const auto backward_item = HWY_DYNAMIC_DISPATCH(BackwardItem);
#pragma omp parallel num_threads(t)
  {
    AlignedBuf qs(nq * Dp), dop(nq * Dp), kt(static_cast<size_t>(Dp) * nkp), kp(static_cast<size_t>(nkp) * Dp),
        vt(static_cast<size_t>(Dp) * nkp), dvec(nq), dqacc(nq * Dp), sc(static_cast<size_t>(BQ) * BK),
        dp(static_cast<size_t>(BQ) * BK), tr(static_cast<size_t>(BK) * BQ), dkj(static_cast<size_t>(BK) * Dp),
        dvj(static_cast<size_t>(BK) * Dp);
    const BackwardArgs args{q, k, v, out, dout, lse, dq, dk, dv, &opt, g, nkp, qs.p, dop.p, kt.p, kp.p,
                            vt.p, dvec.p, dqacc.p, sc.p, dp.p, tr.p, dkj.p, dvj.p};
#pragma omp for schedule(dynamic, 1)
    for (long bh = 0; bh < items; ++bh) backward_item(args, bh);
  }
}

}  // namespace attnviz::nn
#endif  // HWY_ONCE
