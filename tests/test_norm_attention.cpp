// Tests of norm-based attention (Kobayashi et al. 2020, nn::norm_attention): a hand-computed
// one-head case, an independent double-precision reference on random multi-head self- and
// cross-attention with padding, the identity sum_j sum_h alpha f = y - b_O against the layer's own
// forward output, and the transformer translator recording "<name>.norm" / ".norm_sum".
#include <attnviz/engine/norm_attention.hpp>
#include <attnviz/engine/rng.hpp>
#include <attnviz/models/translator.hpp>

#include <doctest/doctest.h>

#include <cmath>

using namespace attnviz;
using namespace attnviz::nn;

namespace {

Mat random_mat(int r, int c, Rng& rng) {
  Mat m(r, c);
  for (int i = 0; i < m.size(); ++i) m.data()[i] = static_cast<float>(rng.uniform() * 2 - 1);
  return m;
}

// The reference: f_h(x_j) = (x_j Wv + bv)[h] Wo[h] in double, then the two norms.
void check_against_reference(const MultiHeadAttention& mha, const Mat& xkv, const AttentionWeights& w,
                             const NormAttention& got) {
  const int B = w.B, H = w.H, Nq = w.Nq, Nk = w.Nk, D = mha.opt.dim, Dh = D / H;
  const Mat& Wv = mha.wv.weight.value;
  const Mat& bv = mha.wv.bias.value;
  const Mat& Wo = mha.wo.weight.value;
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < Nq; ++i)
      for (int j = 0; j < Nk; ++j) {
        std::vector<double> sum(D, 0.0);
        for (int h = 0; h < H; ++h) {
          std::vector<double> f(D, 0.0);
          for (int e = 0; e < Dh; ++e) {
            double v = bv(0, h * Dh + e);
            for (int c = 0; c < xkv.cols(); ++c) v += double(xkv(b * Nk + j, c)) * Wv(c, h * Dh + e);
            for (int d = 0; d < D; ++d) f[d] += v * Wo(h * Dh + e, d);
          }
          const double a = w.at(b, h)[i * Nk + j];
          double n2 = 0;
          for (int d = 0; d < D; ++d) n2 += f[d] * f[d], sum[d] += a * f[d];
          CHECK(got.per_head.at(b, h)[i * Nk + j] == doctest::Approx(a * std::sqrt(n2)).epsilon(1e-4));
        }
        double s2 = 0;
        for (double v : sum) s2 += v * v;
        CHECK(got.summed.at(b, 0)[i * Nk + j] == doctest::Approx(std::sqrt(s2)).epsilon(1e-4));
      }
}

}  // namespace

TEST_CASE("norm-based attention: hand-computed one-head example") {
  // D = 2, one head. W_Q = W_K = 0 -> uniform weights 1/2. W_V = I, b_V = 0,
  // W_O = diag(2, 1). x0 = (1, 0), x1 = (0, 3): f(x0) = (2, 0), f(x1) = (0, 3), norms 2 and 3.
  MultiHeadAttention mha({.dim = 2, .heads = 1});
  mha.wq.weight.value.setZero(), mha.wk.weight.value.setZero();
  mha.wq.bias.value.setZero(), mha.wk.bias.value.setZero();
  mha.wv.weight.value.setIdentity(), mha.wv.bias.value.setZero();
  mha.wo.weight.value << 2, 0, 0, 1;
  mha.wo.bias.value.setZero();
  Mat x(2, 2);
  x << 1, 0, 0, 3;
  AttentionWeights w;
  mha.forward(x, 1, 2, {}, &w);
  NormAttention n = norm_attention(mha, w);
  for (int i = 0; i < 2; ++i) {
    CHECK(w.at(0, 0)[i * 2] == doctest::Approx(0.5));
    CHECK(n.per_head.at(0, 0)[i * 2 + 0] == doctest::Approx(1.0));   // 0.5 * 2
    CHECK(n.per_head.at(0, 0)[i * 2 + 1] == doctest::Approx(1.5));   // 0.5 * 3
    CHECK(n.summed.at(0, 0)[i * 2 + 0] == doctest::Approx(1.0));     // one head: the same
    CHECK(n.summed.at(0, 0)[i * 2 + 1] == doctest::Approx(1.5));
  }
}

TEST_CASE("norm-based attention: multi-head self and cross attention against a double reference") {
  Rng rng(7);
  SUBCASE("self-attention with padding") {
    MultiHeadAttention mha({.dim = 8, .heads = 2});
    mha.init(rng);
    mha.wv.bias.value = random_mat(1, 8, rng);   // biases non-zero: f includes b_V
    mha.wo.bias.value = random_mat(1, 8, rng);
    const int B = 2, T = 4;
    Mat x = random_mat(B * T, 8, rng);
    AttentionWeights w;
    Mat y = mha.forward(x, B, T, {.key_lengths = {4, 2}}, &w);
    NormAttention n = norm_attention(mha, w);
    check_against_reference(mha, x, w, n);
    // Padding keys get zero weight, hence zero norm.
    CHECK(n.per_head.at(1, 0)[0 * T + 3] == 0.f);
    CHECK(n.summed.at(1, 0)[2 * T + 2] == 0.f);
    // The identity the summed norms rest on: y_i - b_O = sum_j sum_h alpha^h_ij f_h(x_j). Summing
    // the per-key vectors' norms bounds ||y_i - b_O|| from above (triangle inequality).
    for (int b = 0; b < B; ++b)
      for (int i = 0; i < T; ++i) {
        const double out = (y.row(b * T + i) - mha.wo.bias.value.row(0)).norm();
        double bound = 0;
        for (int j = 0; j < T; ++j) bound += n.summed.at(b, 0)[i * T + j];
        CHECK(out <= bound + 1e-4);
      }
  }
  SUBCASE("cross-attention, key width != model width") {
    MultiHeadAttention mha({.dim = 8, .heads = 4, .kv_dim = 6});
    mha.init(rng);
    mha.wv.bias.value = random_mat(1, 8, rng);
    const int B = 1, Nq = 3, Nk = 5;
    Mat xq = random_mat(B * Nq, 8, rng), xkv = random_mat(B * Nk, 6, rng);
    AttentionWeights w;
    mha.forward(xq, xkv, B, Nq, Nk, {}, &w);
    check_against_reference(mha, xkv, w, norm_attention(mha, w));
    AttentionWeights wrong;
    wrong.resize(1, 4, 2, 5);
    CHECK_THROWS_AS(norm_attention(mha, wrong), std::invalid_argument);
  }
}

TEST_CASE("norm-based attention: y_i - b_O is exactly the sum of the per-key vectors (one key)") {
  // With a single key every query's output minus b_O is sum_h alpha f_h(x_0) = sum_h f_h(x_0), so
  // its norm equals the summed norm exactly (no triangle slack).
  Rng rng(3);
  MultiHeadAttention mha({.dim = 6, .heads = 3});
  mha.init(rng);
  mha.wv.bias.value = random_mat(1, 6, rng);
  mha.wo.bias.value = random_mat(1, 6, rng);
  Mat xq = random_mat(2, 6, rng), xkv = random_mat(1, 6, rng);
  AttentionWeights w;
  Mat y = mha.forward(xq, xkv, 1, 2, 1, {}, &w);
  NormAttention n = norm_attention(mha, w);
  for (int i = 0; i < 2; ++i)
    CHECK(n.summed.at(0, 0)[i] == doctest::Approx((y.row(i) - mha.wo.bias.value.row(0)).norm()).epsilon(1e-5));
}

TEST_CASE("the transformer translator records <name>.norm and <name>.norm_sum when asked") {
  using namespace attnviz::models;
  TranslatorConfig cfg;
  cfg.arch = "transformer";
  cfg.layers = 1, cfg.heads = 2, cfg.dim = 8, cfg.ff = 16;
  auto m = make_translator(cfg, Vocabulary::build({{"a", "b", "c"}}), Vocabulary::build({{"x", "y"}}));
  m->init(1);
  const std::vector<int> src = {4, 5, 6}, tgt = {4, 5};
  AttentionRecord plain = m->record(src, tgt);
  RecordOptions what;
  what.norms = true;
  AttentionRecord rec = m->record(src, tgt, what);
  CHECK(plain.tensors.size() == 3);
  REQUIRE(rec.tensors.size() == 9);
  const AttentionTensor* cross = rec.find("decoder.layer0.cross");
  const AttentionTensor* norm = rec.find("decoder.layer0.cross.norm");
  const AttentionTensor* sum = rec.find("decoder.layer0.cross.norm_sum");
  REQUIRE(cross);
  REQUIRE(norm);
  REQUIRE(sum);
  CHECK(norm->heads == 2);
  CHECK(sum->heads == 1);
  CHECK(norm->queries == cross->queries);
  CHECK(norm->keys == cross->keys);
  CHECK(norm->key_axis == cross->key_axis);
  // Recording norms never changes the weights.
  CHECK(cross->data == plain.find("decoder.layer0.cross")->data);
  CHECK(rec.tensors[1].name == "encoder.layer0.self.norm");
}
