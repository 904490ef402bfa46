// Decoder-LM inference kernels: RoPE table, RMSNorm, LayerNorm, SwiGLU, tanh-GELU, decode-step attention.
#include <attnviz/engine/lm_ops.hpp>
#include <attnviz/engine/ops.hpp>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace attnviz::nn {

// y[:, :] (row stride ldy) = x w^T (+ b). x: [T, in], w: [out, in] (torch layout), b: [1, out].
// Threads split the rows of x when there are many, else the output columns (rows of w), so a
// one-token step is parallel too. The split depends only on the shape: deterministic.
void linear_rows(const Mat& x, const Mat& w, const Mat* b, float* y, int ldy, int threads) {
  using Out = Eigen::Map<Mat, 0, Eigen::OuterStride<>>;
  const Eigen::Index T = x.rows(), N = w.rows();
  // Below ~2M multiply-adds (~0.5 ms on one core; every per-layer product of a one-token step of a
  // 135M model) a fork/join per product costs more than it gains, and far more on a busy machine,
  // where a descheduled thread stalls each of the ~200 barriers of a token.
  const double work = static_cast<double>(T) * N * x.cols();
  int t = work < 2e6 ? 1 : threads;
  auto run = [&](Eigen::Index r0, Eigen::Index rows, Eigen::Index c0, Eigen::Index cols) {
    Out Y(y + r0 * ldy + c0, rows, cols, Eigen::OuterStride<>(ldy));
    Y.noalias() = x.middleRows(r0, rows) * w.middleRows(c0, cols).transpose();
    if (b) Y.rowwise() += b->row(0).segment(c0, cols);
  };
  if (t <= 1) {
    run(0, T, 0, N);
    return;
  }
  const bool by_rows = T >= 16L * t;
#pragma omp parallel for num_threads(t) schedule(static)
  for (int i = 0; i < t; ++i) {
    if (by_rows) {
      const Eigen::Index r0 = T * i / t, r1 = T * (i + 1) / t;
      if (r1 > r0) run(r0, r1 - r0, 0, N);
    } else {
      // Column blocks in multiples of 16 keep each thread's GEMM on whole SIMD panels.
      const Eigen::Index c0 = (N * i / t) / 16 * 16, c1 = i + 1 == t ? N : (N * (i + 1) / t) / 16 * 16;
      if (c1 > c0) run(0, T, c0, c1 - c0);
    }
  }
}

void gelu_erf_inplace(Mat& x) {
  // x * 0.5 * (1 + erf(x / sqrt(2))), in double inside erf for the last float bit.
  float* p = x.data();
  const Eigen::Index n = x.size();
  for (Eigen::Index i = 0; i < n; ++i)
    p[i] = static_cast<float>(0.5 * p[i] * (1.0 + std::erf(p[i] * 0.70710678118654752440)));
}


double rope_angle(const RopeOptions& opt, int position, int pair) {
  return (position / opt.scale) * std::pow(opt.base, -2.0 * pair / opt.head_dim);
}

RopeTable::RopeTable(const RopeOptions& opt, int max_positions) : opt_(opt), max_pos_(max_positions) {
  if (opt.head_dim <= 0 || opt.head_dim % 2 != 0) throw std::invalid_argument("RoPE: head_dim must be even");
  if (!(opt.base > 0) || !(opt.scale > 0)) throw std::invalid_argument("RoPE: base and scale must be positive");
  const int half = opt.head_dim / 2;
  cos_.resize(static_cast<size_t>(max_positions) * half);
  sin_.resize(cos_.size());
  for (int p = 0; p < max_positions; ++p)
    for (int i = 0; i < half; ++i) {
      const double theta = rope_angle(opt, p, i);
      cos_[static_cast<size_t>(p) * half + i] = static_cast<float>(std::cos(theta));
      sin_[static_cast<size_t>(p) * half + i] = static_cast<float>(std::sin(theta));
    }
}

void RopeTable::apply(float* x, int rows, int heads, int ld, int pos0) const {
  // x: [rows, ld], heads x Dh values per row; (a, b) -> (a cos - b sin, a sin + b cos)
  if (pos0 < 0 || pos0 + rows > max_pos_)
    throw std::out_of_range("RoPE: position " + std::to_string(pos0 + rows - 1) + " beyond the table (" +
                            std::to_string(max_pos_) + ")");
  const int Dh = opt_.head_dim, half = Dh / 2;
  const int stride = opt_.style == RopeStyle::Adjacent ? 2 : 1;   // distance between pair starts
  const int partner = opt_.style == RopeStyle::Adjacent ? 1 : half;
  for (int r = 0; r < rows; ++r) {
    const float* c = cos_.data() + static_cast<size_t>(pos0 + r) * half;
    const float* s = sin_.data() + static_cast<size_t>(pos0 + r) * half;
    for (int h = 0; h < heads; ++h) {
      float* v = x + static_cast<size_t>(r) * ld + static_cast<size_t>(h) * Dh;
      for (int i = 0; i < half; ++i) {
        float& a = v[i * stride];
        float& b = v[i * stride + partner];
        const float a0 = a, b0 = b;
        a = a0 * c[i] - b0 * s[i];
        b = a0 * s[i] + b0 * c[i];
      }
    }
  }
}

void rms_norm_rows(const Mat& x, const float* gamma, float eps, Mat& y) {
  // x, y: [N, D]
  const Eigen::Index N = x.rows(), D = x.cols();
  if (y.rows() != N || y.cols() != D) y.resize(N, D);
  Eigen::Map<const RowVec> g(gamma, D);
  for (Eigen::Index r = 0; r < N; ++r) {
    const float ms = x.row(r).squaredNorm() / static_cast<float>(D);
    const float inv = 1.f / std::sqrt(ms + eps);
    y.row(r) = (x.row(r) * inv).cwiseProduct(g);
  }
}

void layer_norm_rows(const Mat& x, const float* gamma, const float* beta, float eps, Mat& y) {
  // x, y: [N, D]
  const Eigen::Index N = x.rows(), D = x.cols();
  if (y.rows() != N || y.cols() != D) y.resize(N, D);
  Eigen::Map<const RowVec> g(gamma, D), b(beta, D);
  for (Eigen::Index r = 0; r < N; ++r) {
    const float mean = x.row(r).mean();
    const float var = (x.row(r).array() - mean).square().mean();
    const float inv = 1.f / std::sqrt(var + eps);
    y.row(r) = ((x.row(r).array() - mean) * inv).matrix().cwiseProduct(g) + b;
  }
}

void swiglu_inplace(Mat& gate, const Mat& up) {
  // gate, up: [N, F]
  gate.array() = gate.array() / (1.f + (-gate.array()).exp()) * up.array();
}

void gelu_tanh_inplace(Mat& x) {
  constexpr float k = 0.7978845608028654f;   // sqrt(2 / pi)
  x.array() = 0.5f * x.array() * (1.f + (k * (x.array() + 0.044715f * x.array().cube())).tanh());
}

void attention_decode(const float* q, const float* k, const float* v, float* out, const DecodeShape& s,
                      float scale, float* scores, float* weights, int nthreads) {
  // q: [H*Dh]; k: [Nk, ldk]; v: [Nk, ldv]; out: [H*Dh]; scores: [H, Nk] scratch; weights: [H, Nk]
  if (s.H <= 0 || s.Hkv <= 0 || s.H % s.Hkv != 0 || s.Dh <= 0 || s.Nk <= 0)
    throw std::invalid_argument("attention_decode: bad shape");
  using Strided = Eigen::Map<const Mat, 0, Eigen::OuterStride<>>;
  const int group = s.H / s.Hkv;
  const int ldk = s.ldk ? s.ldk : s.Hkv * s.Dh, ldv = s.ldv ? s.ldv : s.Hkv * s.Dh;
  const double work = static_cast<double>(s.H) * s.Nk * s.Dh;
  int t = nthreads > 0 ? nthreads : threads();
  if (work < 1.5e5) t = 1;   // below ~0.1 ms the fork/join costs more than it saves
  t = std::min(t, s.H);
#pragma omp parallel for num_threads(t) schedule(static) if (t > 1)
  for (int h = 0; h < s.H; ++h) {
    const int g = h / group;
    Strided K(k + static_cast<size_t>(g) * s.Dh, s.Nk, s.Dh, Eigen::OuterStride<>(ldk));   // [Nk, Dh]
    Strided V(v + static_cast<size_t>(g) * s.Dh, s.Nk, s.Dh, Eigen::OuterStride<>(ldv));   // [Nk, Dh]
    Eigen::Map<const RowVec> qh(q + static_cast<size_t>(h) * s.Dh, s.Dh);
    Eigen::Map<RowVec> sc(scores + static_cast<size_t>(h) * s.Nk, s.Nk);
    Eigen::Map<RowVec> oh(out + static_cast<size_t>(h) * s.Dh, s.Dh);
    sc.noalias() = qh * K.transpose();   // [1, Nk]
    sc *= scale;
    const float m = sc.maxCoeff();
    sc = (sc.array() - m).exp().matrix();
    const float inv = 1.f / sc.sum();
    sc *= inv;
    oh.noalias() = sc * V;   // [1, Dh]
    if (weights) std::copy(sc.data(), sc.data() + s.Nk, weights + static_cast<size_t>(h) * s.Nk);
  }
}

}  // namespace attnviz::nn
