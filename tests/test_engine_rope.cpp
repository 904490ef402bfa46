// Decoder-LM engine kernels against naive references: RoPE (both pairings, scaling), RMSNorm,
// LayerNorm, SwiGLU, tanh-GELU, the decode-step attention and grouped-query attention in the blocked kernel.
#include <doctest/doctest.h>

#include <attnviz/engine/attention.hpp>
#include <attnviz/engine/lm_ops.hpp>
#include <attnviz/engine/rng.hpp>

#include <cmath>
#include <vector>

using namespace attnviz;
using namespace attnviz::nn;

namespace {

Mat random_mat(int r, int c, std::uint64_t seed) {
  Rng rng(seed);
  Mat m(r, c);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = rng.normal();
  return m;
}

double max_diff(const float* a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::abs(static_cast<double>(a[i]) - b[i]));
  return m;
}

}  // namespace

TEST_CASE("RoPE: adjacent and half pairs against the formula, positions offset, linear scaling") {
  const int T = 5, H = 3, Dh = 8, ld = H * Dh + 2;   // a row stride wider than the heads
  for (RopeStyle style : {RopeStyle::Adjacent, RopeStyle::Halves})
    for (double scale : {1.0, 4.0}) {
      RopeOptions o;
      o.head_dim = Dh;
      o.base = 500.0;
      o.scale = scale;
      o.style = style;
      RopeTable table(o, 32);
      Mat x = random_mat(T, ld, 7);
      Mat y = x;
      const int pos0 = 3;
      table.apply(y.data(), T, H, ld, pos0);
      for (int t = 0; t < T; ++t) {
        for (int h = 0; h < H; ++h)
          for (int i = 0; i < Dh / 2; ++i) {
            const int a = style == RopeStyle::Adjacent ? 2 * i : i;
            const int b = style == RopeStyle::Adjacent ? 2 * i + 1 : i + Dh / 2;
            const double th = ((pos0 + t) / scale) * std::pow(500.0, -2.0 * i / Dh);
            const double xa = x(t, h * Dh + a), xb = x(t, h * Dh + b);
            CHECK(y(t, h * Dh + a) == doctest::Approx(xa * std::cos(th) - xb * std::sin(th)).epsilon(1e-5));
            CHECK(y(t, h * Dh + b) == doctest::Approx(xa * std::sin(th) + xb * std::cos(th)).epsilon(1e-5));
          }
        // Columns past the heads are untouched.
        CHECK(y(t, ld - 1) == x(t, ld - 1));
      }
      // Position 0 is the identity; a norm-preserving rotation everywhere.
      Mat z = x;
      table.apply(z.data(), 1, H, ld, 0);
      CHECK(max_diff(z.data(), x.data(), H * Dh) < 1e-7);
      CHECK(y.row(2).head(H * Dh).norm() == doctest::Approx(x.row(2).head(H * Dh).norm()).epsilon(1e-5));
      CHECK_THROWS(table.apply(y.data(), T, H, ld, 30));
    }
}

TEST_CASE("RMSNorm, LayerNorm, SwiGLU, tanh-GELU against plain loops") {
  const int N = 4, D = 12;
  Mat x = random_mat(N, D, 3), g = random_mat(1, D, 4), b = random_mat(1, D, 5);
  Mat y;
  rms_norm_rows(x, g.data(), 1e-5f, y);
  for (int r = 0; r < N; ++r) {
    double ss = 0;
    for (int j = 0; j < D; ++j) ss += double(x(r, j)) * x(r, j);
    const double inv = 1.0 / std::sqrt(ss / D + 1e-5);
    for (int j = 0; j < D; ++j) CHECK(y(r, j) == doctest::Approx(x(r, j) * inv * g(0, j)).epsilon(1e-5));
  }
  layer_norm_rows(x, g.data(), b.data(), 1e-5f, y);
  for (int r = 0; r < N; ++r) {
    double mean = 0, var = 0;
    for (int j = 0; j < D; ++j) mean += x(r, j) / double(D);
    for (int j = 0; j < D; ++j) var += (x(r, j) - mean) * (x(r, j) - mean) / D;
    for (int j = 0; j < D; ++j)
      CHECK(y(r, j) == doctest::Approx((x(r, j) - mean) / std::sqrt(var + 1e-5) * g(0, j) + b(0, j)).epsilon(1e-4));
  }
  Mat gate = random_mat(N, D, 8), up = random_mat(N, D, 9), s = gate;
  swiglu_inplace(s, up);
  for (Eigen::Index i = 0; i < s.size(); ++i) {
    const double v = gate.data()[i];
    CHECK(s.data()[i] == doctest::Approx(v / (1 + std::exp(-v)) * up.data()[i]).epsilon(1e-5));
  }
  Mat e = gate;
  gelu_tanh_inplace(e);
  for (Eigen::Index i = 0; i < e.size(); ++i) {
    const double v = gate.data()[i];
    CHECK(e.data()[i] ==
          doctest::Approx(0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)))).epsilon(1e-5));
  }
}

TEST_CASE("grouped-query attention: blocked kernel and decode step equal naive MHA on expanded K/V") {
  const int H = 6, Hkv = 2, Dh = 16, T = 37, group = H / Hkv;
  Mat q = random_mat(T, H * Dh, 11), k = random_mat(T, Hkv * Dh, 12), v = random_mat(T, Hkv * Dh, 13);
  // Reference: copy each K/V head to the query heads that share it, then plain multi-head attention.
  Mat kx(T, H * Dh), vx(T, H * Dh);
  for (int h = 0; h < H; ++h) {
    kx.middleCols(h * Dh, Dh) = k.middleCols((h / group) * Dh, Dh);
    vx.middleCols(h * Dh, Dh) = v.middleCols((h / group) * Dh, Dh);
  }
  KernelShape ref;
  ref.H = H; ref.Nq = T; ref.Nk = T; ref.Dh = Dh;
  KernelOptions ko;
  ko.scale = 0.25f;
  ko.causal = true;
  std::vector<float> wref(static_cast<size_t>(H) * T * T), wgqa(wref.size());
  Mat oref(T, H * Dh), ogqa(T, H * Dh);
  ko.weights = wref.data();
  attention_naive(q.data(), kx.data(), vx.data(), oref.data(), ref, ko);
  KernelShape gs = ref;
  gs.kv_heads = Hkv;
  ko.weights = wgqa.data();
  attention_blocked(q.data(), k.data(), v.data(), ogqa.data(), gs, ko);
  CHECK(max_diff(ogqa.data(), oref.data(), ogqa.size()) < 1e-5);
  CHECK(max_diff(wgqa.data(), wref.data(), wref.size()) < 1e-6);
  // Naive with kv_heads too.
  Mat onaive(T, H * Dh);
  attention_naive(q.data(), k.data(), v.data(), onaive.data(), gs, KernelOptions{0.25f, nullptr, true});
  CHECK(max_diff(onaive.data(), oref.data(), onaive.size()) < 1e-5);

  // The decode step for the last query row sees all T keys: row T-1 of the causal result.
  std::vector<float> scores(static_cast<size_t>(H) * T), w(static_cast<size_t>(H) * T);
  std::vector<float> out(H * Dh);
  DecodeShape ds;
  ds.H = H; ds.Hkv = Hkv; ds.Dh = Dh; ds.Nk = T;
  attention_decode(q.row(T - 1).data(), k.data(), v.data(), out.data(), ds, 0.25f, scores.data(), w.data());
  CHECK(max_diff(out.data(), oref.row(T - 1).data(), H * Dh) < 1e-5);
  for (int h = 0; h < H; ++h)
    CHECK(max_diff(w.data() + h * T, wref.data() + (static_cast<size_t>(h) * T + T - 1) * T, T) < 1e-6);
  // Without weights the output is the same (recording never changes the numbers).
  std::vector<float> out2(H * Dh);
  attention_decode(q.row(T - 1).data(), k.data(), v.data(), out2.data(), ds, 0.25f, scores.data(), nullptr);
  CHECK(out2 == out);
  // Heads that do not divide are refused.
  KernelShape badk = gs;
  badk.kv_heads = 4;
  CHECK_THROWS(attention_blocked(q.data(), k.data(), v.data(), ogqa.data(), badk, ko));
}
