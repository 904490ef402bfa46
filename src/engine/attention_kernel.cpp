// The attention kernel: blocked online-softmax forward (AVX2/FMA register-tiled micro-kernels),
// the optional second pass writing exact weights, the naive reference, and the backward pass.
#include <attnviz/engine/attention.hpp>
#include <attnviz/engine/ops.hpp>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define ATTNVIZ_AVX2 1
#endif

namespace attnviz::nn {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kLog2e = 1.4426950408889634f;

// Tile sizes. A (query tile x key tile) step touches: packed Q [BQ, Dp], K^T [Dp, BK], V [BK, Dp],
// scores [BQ, BK] and the output accumulator [BQ, Dp]: about 100 KiB at BQ = 96, BK = Dp = 64,
// which sits in the 1 MiB L2 with room to spare, while each micro-kernel call streams one 16-key
// column block of K^T (4 KiB) or one 16-column block of V from L1 for 6-12 query rows. Bigger
// tiles amortise the per-tile softmax rescale (BQ*Dp multiplies per BK keys) but leave fewer
// work items for the threads at small N. The head's K^T and V are packed once per work item.
constexpr int kDefaultQTile = 96;   // a multiple of both micro-kernel heights (6, 12)
constexpr int kDefaultKTile = 64;
// Micro-kernel rows (query rows): 2*kMR accumulators + 3 operands must fit the register file:
// 16 ymm registers with AVX2 (kMR = 6), 32 when AVX-512VL lets 256-bit code use ymm16-31
// (kMR = 12: twice the FMAs per loaded K/V vector, same AVX2-width arithmetic).
#ifdef __AVX512VL__
constexpr int kMR = 12;
#else
constexpr int kMR = 6;
#endif
constexpr int kNR = 16;   // micro-kernel columns (keys in QK^T, head dims in PV): two ymm

inline int round_up(int x, int m) { return (x + m - 1) / m * m; }

struct AlignedBuf {
  float* p = nullptr;
  explicit AlignedBuf(size_t n) {
    p = static_cast<float*>(std::aligned_alloc(64, std::max<size_t>(64, round_up(static_cast<int>(n), 16) * sizeof(float))));
    if (!p) throw std::bad_alloc();
  }
  ~AlignedBuf() { std::free(p); }
  AlignedBuf(const AlignedBuf&) = delete;
  AlignedBuf& operator=(const AlignedBuf&) = delete;
};

#ifdef ATTNVIZ_AVX2
// 2^x for x <= 0 (clamped at -126): x = n + f, f in [-0.5, 0.5], 2^f by a degree-6 polynomial
// (relative error ~2e-8), 2^n by building the exponent bits.
inline __m256 exp2_ps(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-126.f));
  __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 f = _mm256_sub_ps(x, n);
  __m256 p = _mm256_set1_ps(1.535336188319500e-4f);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.339887440266574e-3f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.618437357674640e-3f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.550332471162809e-2f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.402264791363012e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.931472028550421e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// The micro-kernels keep their 2*R accumulators in named variables rather than arrays: with
// arrays GCC 12 spills every accumulator to the stack on each iteration (store-bound, ~2x slower).
#define ATTNVIZ_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

// S[R, 16-col block] = Qp[R, Dp] . Kt[Dp, 16-col block]; Kt row stride ldk, S row stride lds.
template <int R>
inline void qk_block(const float* qp, int ldq, const float* kt, int ldk, int Dp, float* s, int lds) {
#define DECL(r) __m256 a##r##0 = _mm256_setzero_ps(), a##r##1 = _mm256_setzero_ps();
  ATTNVIZ_ROWS(DECL)
#undef DECL
  for (int c = 0; c < Dp; ++c) {
    const __m256 k0 = _mm256_load_ps(kt + c * ldk), k1 = _mm256_load_ps(kt + c * ldk + 8);
#define STEP(r)                                              \
  if constexpr (R > r) {                                     \
    const __m256 qv = _mm256_broadcast_ss(qp + r * ldq + c); \
    a##r##0 = _mm256_fmadd_ps(qv, k0, a##r##0);              \
    a##r##1 = _mm256_fmadd_ps(qv, k1, a##r##1);              \
  }
    ATTNVIZ_ROWS(STEP)
#undef STEP
  }
#define STORE(r)                                  \
  if constexpr (R > r) {                          \
    _mm256_store_ps(s + r * lds, a##r##0);        \
    _mm256_store_ps(s + r * lds + 8, a##r##1);    \
  }
  ATTNVIZ_ROWS(STORE)
#undef STORE
}

// O[R, W-col block] += P[R, K] . Vp[K, W-col block] (W = 16 or 8).
template <int R, int W>
inline void pv_block(const float* p, int ldp, const float* vp, int ldv, int K, float* o, int ldo) {
#define LOAD(r)                                                                       \
  __m256 a##r##0 = R > r ? _mm256_load_ps(o + r * ldo) : _mm256_setzero_ps();          \
  __m256 a##r##1 = (R > r && W == 16) ? _mm256_load_ps(o + r * ldo + 8) : _mm256_setzero_ps();
  ATTNVIZ_ROWS(LOAD)
#undef LOAD
  for (int k = 0; k < K; ++k) {
    const __m256 v0 = _mm256_load_ps(vp + k * ldv);
    const __m256 v1 = W == 16 ? _mm256_load_ps(vp + k * ldv + 8) : v0;
#define STEP(r)                                                 \
  if constexpr (R > r) {                                        \
    const __m256 pr = _mm256_broadcast_ss(p + r * ldp + k);     \
    a##r##0 = _mm256_fmadd_ps(pr, v0, a##r##0);                 \
    if constexpr (W == 16) a##r##1 = _mm256_fmadd_ps(pr, v1, a##r##1); \
  }
    ATTNVIZ_ROWS(STEP)
#undef STEP
  }
#define STORE(r)                                                   \
  if constexpr (R > r) {                                           \
    _mm256_store_ps(o + r * ldo, a##r##0);                         \
    if constexpr (W == 16) _mm256_store_ps(o + r * ldo + 8, a##r##1); \
  }
  ATTNVIZ_ROWS(STORE)
#undef STORE
}
#undef ATTNVIZ_ROWS
#else
template <int R>
inline void qk_block(const float* qp, int ldq, const float* kt, int ldk, int Dp, float* s, int lds) {
  float acc[R][kNR] = {};
  for (int c = 0; c < Dp; ++c)
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < kNR; ++j) acc[r][j] += qp[r * ldq + c] * kt[c * ldk + j];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < kNR; ++j) s[r * lds + j] = acc[r][j];
}
template <int R, int W>
inline void pv_block(const float* p, int ldp, const float* vp, int ldv, int K, float* o, int ldo) {
  for (int k = 0; k < K; ++k)
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < W; ++j) o[r * ldo + j] += p[r * ldp + k] * vp[k * ldv + j];
}
#endif

template <int R>
void qk_rows(const float* qp, int ldq, const float* kt, int ldk, int Dp, int kpad, float* s, int lds) {
  for (int j = 0; j < kpad; j += kNR) qk_block<R>(qp, ldq, kt + j, ldk, Dp, s + j, lds);
}

// Calls F::run<R>(r) for the remainder block of R = rows % kMR rows at row r (R known at compile time).
template <int R, class F>
inline void dispatch_rows(int rem, F&& f) {
  if constexpr (R > 0) {
    if (rem == R) f.template operator()<R>();
    else dispatch_rows<R - 1>(rem, f);
  }
}

// S[rows, kpad] = Qp[rows, Dp] . Kt[Dp, kpad]
void qk_tile(const float* qp, int ldq, const float* kt, int ldk, int Dp, int rows, int kpad, float* s, int lds) {
  int r = 0;
  for (; r + kMR <= rows; r += kMR) qk_rows<kMR>(qp + r * ldq, ldq, kt, ldk, Dp, kpad, s + r * lds, lds);
  dispatch_rows<kMR - 1>(rows - r, [&]<int R>() { qk_rows<R>(qp + r * ldq, ldq, kt, ldk, Dp, kpad, s + r * lds, lds); });
}

template <int R>
void pv_rows(const float* p, int ldp, const float* vp, int ldv, int K, int Dp, float* o, int ldo) {
  int c = 0;
  for (; c + 16 <= Dp; c += 16) pv_block<R, 16>(p, ldp, vp + c, ldv, K, o + c, ldo);
  if (c < Dp) pv_block<R, 8>(p, ldp, vp + c, ldv, K, o + c, ldo);
}

// O[rows, Dp] += P[rows, K] . Vp[K, Dp]
void pv_tile(const float* p, int ldp, const float* vp, int ldv, int K, int Dp, int rows, float* o, int ldo) {
  int r = 0;
  for (; r + kMR <= rows; r += kMR) pv_rows<kMR>(p + r * ldp, ldp, vp, ldv, K, Dp, o + r * ldo, ldo);
  dispatch_rows<kMR - 1>(rows - r, [&]<int R>() { pv_rows<R>(p + r * ldp, ldp, vp, ldv, K, Dp, o + r * ldo, ldo); });
}

// p[j] = e^(s[j] - m) for j < n (n a multiple of 8); returns the sum of p[0..n).
inline float exp_row(float* s, int n, float m) {
#ifdef ATTNVIZ_AVX2
  __m256 vm = _mm256_set1_ps(m), acc = _mm256_setzero_ps(), l2e = _mm256_set1_ps(kLog2e);
  for (int j = 0; j < n; j += 8) {
    // Subtract first, then scale: s - m is (nearly) exact, so large logits keep full accuracy.
    __m256 e = exp2_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_load_ps(s + j), vm), l2e));
    _mm256_store_ps(s + j, e);
    acc = _mm256_add_ps(acc, e);
  }
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
  return _mm_cvtss_f32(lo);
#else
  float sum = 0;
  for (int j = 0; j < n; ++j) {
    s[j] = std::exp2(std::max((s[j] - m) * kLog2e, -126.f));
    sum += s[j];
  }
  return sum;
#endif
}

inline float max_row(const float* s, int n) {
#ifdef ATTNVIZ_AVX2
  __m256 m = _mm256_set1_ps(kNegInf);
  for (int j = 0; j < n; j += 8) m = _mm256_max_ps(m, _mm256_load_ps(s + j));
  __m128 lo = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  lo = _mm_max_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_max_ss(lo, _mm_shuffle_ps(lo, lo, 1));
  return _mm_cvtss_f32(lo);
#else
  float m = kNegInf;
  for (int j = 0; j < n; ++j) m = std::max(m, s[j]);
  return m;
#endif
}

struct Geometry {
  int B, H, Nq, Nk, Dh, Dp, ldq, ldk, ldv, ldo, BQ, BK, qtiles;
  int group;   // query heads per K/V head (GQA); K/V head of query head h is h / group
};

Geometry geometry(const KernelShape& s, const KernelOptions& o) {
  if (s.B < 0 || s.H <= 0 || s.Nq < 0 || s.Nk < 0 || s.Dh <= 0)
    throw std::invalid_argument("attention kernel: bad shape");
  Geometry g;
  g.B = s.B; g.H = s.H; g.Nq = s.Nq; g.Nk = s.Nk; g.Dh = s.Dh;
  g.Dp = round_up(s.Dh, 8);
  const int hkv = s.kv_heads > 0 ? s.kv_heads : s.H;
  if (s.H % hkv != 0) throw std::invalid_argument("attention kernel: heads not a multiple of kv_heads");
  g.group = s.H / hkv;
  g.ldq = s.ldq ? s.ldq : s.H * s.Dh;
  g.ldk = s.ldk ? s.ldk : hkv * s.Dh;
  g.ldv = s.ldv ? s.ldv : hkv * s.Dh;
  g.ldo = s.ldo ? s.ldo : s.H * s.Dh;
  g.BQ = o.q_tile > 0 ? o.q_tile : kDefaultQTile;
  g.BK = round_up(o.k_tile > 0 ? o.k_tile : kDefaultKTile, kNR);
  g.qtiles = (s.Nq + g.BQ - 1) / std::max(1, g.BQ);
  return g;
}

// Keys query i of batch b may see: [0, visible(i)).
inline int visible_keys(const Geometry& g, const KernelOptions& o, int b, int i) {
  int n = o.key_lengths ? std::clamp(o.key_lengths[b], 0, g.Nk) : g.Nk;
  if (o.causal) n = std::min(n, i + 1);
  return n;
}

}  // namespace

size_t attention_blocked_workspace_bytes(const KernelShape& shape, const KernelOptions& opt) {
  Geometry g = geometry(shape, opt);
  int t = opt.threads > 0 ? opt.threads : threads();
  const size_t ktiles = std::max(1, (g.Nk + g.BK - 1) / g.BK);
  // Per thread: packed Q tile, the head's packed K^T and V (O(N d)), scores, accumulator, stats.
  size_t per = static_cast<size_t>(g.BQ) * g.Dp + 2 * ktiles * g.BK * g.Dp + static_cast<size_t>(g.BQ) * g.BK +
               static_cast<size_t>(g.BQ) * g.Dp + 2 * g.BQ + 5 * 16;
  return per * sizeof(float) * t;
}

void attention_blocked(const float* q, const float* k, const float* v, float* out,
                       const KernelShape& shape, const KernelOptions& opt) {
  const Geometry g = geometry(shape, opt);
  const int BQ = g.BQ, BK = g.BK, Dp = g.Dp, Dh = g.Dh;
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
  // The score scale goes into the packed Q; exponentials are taken as 2^((s - m) log2 e).
  const float qscale = opt.scale;

#pragma omp parallel num_threads(nthreads)
  {
    AlignedBuf qp(static_cast<size_t>(BQ) * Dp), kpack(static_cast<size_t>(ktiles) * Dp * BK),
        vpack(static_cast<size_t>(ktiles) * BK * Dp), sc(static_cast<size_t>(BQ) * BK),
        acc(static_cast<size_t>(BQ) * Dp), mrow(BQ), lrow(BQ);
#pragma omp for schedule(dynamic, 1)
    for (long item = 0; item < items; ++item) {
      const int chunk = static_cast<int>(item % chunks);
      const int h = static_cast<int>((item / chunks) % g.H);
      const int b = static_cast<int>(item / (static_cast<long>(chunks) * g.H));
      const int qt0 = static_cast<int>(static_cast<long>(g.qtiles) * chunk / chunks);
      const int qt1 = static_cast<int>(static_cast<long>(g.qtiles) * (chunk + 1) / chunks);
      if (qt1 <= qt0) continue;
      const float* kb = k + static_cast<size_t>(b) * g.Nk * g.ldk + static_cast<size_t>(h / g.group) * Dh;
      const float* vb = v + static_cast<size_t>(b) * g.Nk * g.ldv + static_cast<size_t>(h / g.group) * Dh;

      // Pack the keys this chunk may see: K^T as [Dp, BK] blocks and V as [BK, Dp] blocks, one
      // pair per key tile, zero-padded.
      int kmax = 0;
      for (int i = qt0 * BQ; i < std::min(g.Nq, qt1 * BQ); ++i) kmax = std::max(kmax, visible_keys(g, opt, b, i));
      for (int t = 0; t * BK < kmax; ++t) {
        float* kt = kpack.p + static_cast<size_t>(t) * Dp * BK;
        float* vt = vpack.p + static_cast<size_t>(t) * BK * Dp;
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
        const float* qb = q + (static_cast<size_t>(b) * g.Nq + i0) * g.ldq + static_cast<size_t>(h) * Dh;
        // Pack the query tile (scaled, zero-padded to Dp) and reset the running statistics.
        for (int r = 0; r < rows; ++r) {
          float* dst = qp.p + static_cast<size_t>(r) * Dp;
          for (int c = 0; c < Dh; ++c) dst[c] = qb[static_cast<size_t>(r) * g.ldq + c] * qscale;
          for (int c = Dh; c < Dp; ++c) dst[c] = 0.f;
          mrow.p[r] = kNegInf;
          lrow.p[r] = 0.f;
        }
        std::memset(acc.p, 0, sizeof(float) * static_cast<size_t>(rows) * Dp);
        int kend = 0;   // keys any row of this tile may see
        for (int r = 0; r < rows; ++r) kend = std::max(kend, visible_keys(g, opt, b, i0 + r));

        for (int j0 = 0; j0 < kend; j0 += BK) {
          const int kc = std::min(BK, kend - j0), kpad = round_up(kc, kNR);
          const float* kt = kpack.p + static_cast<size_t>(j0 / BK) * Dp * BK;
          const float* vt = vpack.p + static_cast<size_t>(j0 / BK) * BK * Dp;
          // S = Qs K^T for this tile pair.
          qk_tile(qp.p, Dp, kt, BK, Dp, rows, kpad, sc.p, BK);
          // Online softmax, row by row: new max, rescale the accumulator, exponentiate.
          for (int r = 0; r < rows; ++r) {
            float* s = sc.p + static_cast<size_t>(r) * BK;
            const int vis = std::min(kc, visible_keys(g, opt, b, i0 + r) - j0);   // visible in tile
            if (vis <= 0) {
              std::memset(s, 0, sizeof(float) * kc);
              continue;
            }
            for (int j = vis; j < kpad; ++j) s[j] = kNegInf;
            const float mnew = std::max(mrow.p[r], max_row(s, kpad));
            const float alpha = std::exp(mrow.p[r] - mnew);   // 0 when the old max was -inf
            const float sum = exp_row(s, kpad, mnew);
            // exp2 clamps at 2^-126 instead of 0: masked entries are zeroed exactly.
            float tail = 0.f;
            for (int j = vis; j < kpad; ++j) tail += s[j], s[j] = 0.f;
            lrow.p[r] = lrow.p[r] * alpha + (sum - tail);
            mrow.p[r] = mnew;
            if (alpha != 1.f) {
              float* o = acc.p + static_cast<size_t>(r) * Dp;
              for (int c = 0; c < Dp; ++c) o[c] *= alpha;
            }
          }
          // O += P V
          pv_tile(sc.p, BK, vt, Dp, kc, Dp, rows, acc.p, Dp);
        }

        // Normalise and write out; rows that saw no key get zeros.
        for (int r = 0; r < rows; ++r) {
          float* o = out + (static_cast<size_t>(b) * g.Nq + i0 + r) * g.ldo + static_cast<size_t>(h) * Dh;
          const float l = lrow.p[r];
          const float inv = l > 0.f ? 1.f / l : 0.f;
          const float* a = acc.p + static_cast<size_t>(r) * Dp;
          for (int c = 0; c < Dh; ++c) o[c] = a[c] * inv;
          if (opt.lse)
            opt.lse[(static_cast<size_t>(b) * g.H + h) * g.Nq + i0 + r] = l > 0.f ? mrow.p[r] + std::log(l) : kNegInf;
        }

        // Second pass (only when weights are requested): recompute the scores tile by tile and
        // write exp(s - m) / l, now that each row's final max and sum are known.
        if (opt.weights) {
          for (int j0 = 0; j0 < g.Nk; j0 += BK) {
            const int kc = std::min(BK, g.Nk - j0), kpad = round_up(kc, kNR);
            const bool any = j0 < kend;
            if (any) qk_tile(qp.p, Dp, kpack.p + static_cast<size_t>(j0 / BK) * Dp * BK, BK, Dp, rows, kpad, sc.p, BK);
            for (int r = 0; r < rows; ++r) {
              float* w = opt.weights + ((static_cast<size_t>(b) * g.H + h) * g.Nq + i0 + r) * g.Nk + j0;
              const int vis = any ? std::min(kc, visible_keys(g, opt, b, i0 + r) - j0) : 0;
              const float l = lrow.p[r];
              if (vis <= 0 || !(l > 0.f)) {
                std::memset(w, 0, sizeof(float) * kc);
                continue;
              }
              float* s = sc.p + static_cast<size_t>(r) * BK;
              exp_row(s, kpad, mrow.p[r]);
              const float inv = 1.f / l;
              for (int j = 0; j < vis; ++j) w[j] = s[j] * inv;
              for (int j = vis; j < kc; ++j) w[j] = 0.f;
            }
          }
        }
      }
    }
  }
}

void attention_naive(const float* q, const float* k, const float* v, float* out,
                     const KernelShape& shape, const KernelOptions& opt) {
  const Geometry g = geometry(shape, opt);
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
  // Per (b, h): P = exp(scale q k^T - lse) (0 where masked); dV = P^T dO; dP = dO V^T;
  // dS = P * (dP - rowsum(dO * O)); dQ = scale dS K; dK = scale dS^T Q.
  using Strided = Eigen::Map<const Mat, 0, Eigen::OuterStride<>>;
  using StridedOut = Eigen::Map<Mat, 0, Eigen::OuterStride<>>;
  const Geometry g = geometry(shape, opt);
  // Shared K/V heads would need a reduction of dK/dV across threads: backward is for MHA only.
  if (g.group != 1) throw std::invalid_argument("attention_backward: grouped-query attention is forward-only");
  const int nthreads = opt.threads > 0 ? opt.threads : threads();
  const long items = static_cast<long>(g.B) * g.H;
  const int t = static_cast<double>(items) * g.Nq * g.Nk * g.Dh < 2e5 ? 1 : nthreads;
#pragma omp parallel num_threads(t)
  {
    Mat P, dP, dQ, dK, dV;
    Vec D;
#pragma omp for schedule(dynamic, 1)
    for (long bh = 0; bh < items; ++bh) {
      const int b = static_cast<int>(bh / g.H), h = static_cast<int>(bh % g.H);
      const size_t hq = static_cast<size_t>(h) * g.Dh;
      Strided Q(q + static_cast<size_t>(b) * g.Nq * g.ldq + hq, g.Nq, g.Dh, Eigen::OuterStride<>(g.ldq));
      Strided O(out + static_cast<size_t>(b) * g.Nq * g.ldo + hq, g.Nq, g.Dh, Eigen::OuterStride<>(g.ldo));
      Strided dO(dout + static_cast<size_t>(b) * g.Nq * g.ldo + hq, g.Nq, g.Dh, Eigen::OuterStride<>(g.ldo));
      Strided K(k + static_cast<size_t>(b) * g.Nk * g.ldk + hq, g.Nk, g.Dh, Eigen::OuterStride<>(g.ldk));
      Strided V(v + static_cast<size_t>(b) * g.Nk * g.ldv + hq, g.Nk, g.Dh, Eigen::OuterStride<>(g.ldv));
      StridedOut dQo(dq + static_cast<size_t>(b) * g.Nq * g.ldq + hq, g.Nq, g.Dh, Eigen::OuterStride<>(g.ldq));
      StridedOut dKo(dk + static_cast<size_t>(b) * g.Nk * g.ldk + hq, g.Nk, g.Dh, Eigen::OuterStride<>(g.ldk));
      StridedOut dVo(dv + static_cast<size_t>(b) * g.Nk * g.ldv + hq, g.Nk, g.Dh, Eigen::OuterStride<>(g.ldv));
      const float* l = lse + (static_cast<size_t>(b) * g.H + h) * g.Nq;
      // Recompute P.
      P.noalias() = Q * K.transpose();
      for (int i = 0; i < g.Nq; ++i) {
        const int vis = l[i] > kNegInf ? visible_keys(g, opt, b, i) : 0;
        P.row(i).head(vis) = (P.row(i).head(vis).array() * opt.scale - l[i]).exp().matrix();   // vectorised exp
        P.row(i).tail(g.Nk - vis).setZero();
      }
      // dV = P^T dO
      dV.noalias() = P.transpose() * dO;
      // dP = dO V^T; dS = P * (dP - D)
      dP.noalias() = dO * V.transpose();
      D = (dO.cwiseProduct(O)).rowwise().sum();
      dP = (P.array() * (dP.colwise() - D).array()).matrix();
      dQ.noalias() = dP * K;
      dK.noalias() = dP.transpose() * Q;
      dQo = dQ * opt.scale;
      dKo = dK * opt.scale;
      dVo = dV;
    }
  }
}

}  // namespace attnviz::nn
