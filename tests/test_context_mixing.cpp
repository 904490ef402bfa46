// Tests of context mixing by value zeroing (Mohebbi et al. 2023, nn::value_zeroing): against a
// brute-force rerun of the block with each token's value vector zeroed (attention written out
// here with plain loops), rows summing to 1 as the paper normalizes them, padding keys at 0, and
// the mixing rollout.
#include <attnviz/analysis/context_mixing.hpp>
#include <attnviz/engine/context_mixing.hpp>
#include <attnviz/engine/rng.hpp>
#include <attnviz/models/translator.hpp>

#include <doctest/doctest.h>

#include <cmath>

using namespace attnviz;
using namespace attnviz::nn;

namespace {

// The block output for sequence b with token `zero`'s value vector zeroed (-1 = none), computed
// from the block's parameters with the attention written out by hand. x: [T, D] -> [T, D].
Mat brute_force(const EncoderBlock& blk, const Mat& x, int key_len, int zero) {
  const int T = static_cast<int>(x.rows()), D = blk.opt.dim, H = blk.opt.heads, Dh = D / H;
  LayerNorm ln1 = blk.ln1, ln2 = blk.ln2;
  Linear fc1 = blk.fc1, fc2 = blk.fc2;
  const Mat u = ln1.forward(x);
  const Mat q = blk.attn.wq.apply(u), k = blk.attn.wk.apply(u);
  Mat v = blk.attn.wv.apply(u);
  if (zero >= 0) v.row(zero).setZero();
  Mat ctx = Mat::Zero(T, D);
  for (int h = 0; h < H; ++h)
    for (int i = 0; i < T; ++i) {
      std::vector<double> s(key_len);
      double mx = -1e300, sum = 0;
      for (int j = 0; j < key_len; ++j) {
        double d = 0;
        for (int e = 0; e < Dh; ++e) d += double(q(i, h * Dh + e)) * k(j, h * Dh + e);
        s[j] = d / std::sqrt(double(Dh));
        mx = std::max(mx, s[j]);
      }
      for (auto& e : s) sum += (e = std::exp(e - mx));
      for (int j = 0; j < key_len; ++j)
        for (int e = 0; e < Dh; ++e) ctx(i, h * Dh + e) += static_cast<float>(s[j] / sum * v(j, h * Dh + e));
    }
  const Mat hmat = x + blk.attn.wo.apply(ctx);
  Gelu g;
  return hmat + fc2.forward(g.forward(fc1.forward(ln2.forward(hmat))));
}

double cos_dist(const Mat& a, const Mat& b, int i) {
  return 1.0 - double(a.row(i).cwiseProduct(b.row(i)).sum()) / (double(a.row(i).norm()) * b.row(i).norm());
}

}  // namespace

TEST_CASE("value zeroing equals rerunning the block with each value vector zeroed") {
  Rng rng(11);
  EncoderBlock blk({.dim = 8, .heads = 2, .mlp_hidden = 16});
  blk.init(rng);
  for (auto* p : {&blk.attn.wv.bias.value, &blk.attn.wo.bias.value, &blk.fc1.bias.value})
    for (int i = 0; i < p->size(); ++i) p->data()[i] = rng.uniform(-0.5f, 0.5f);
  const int B = 2, T = 5;
  Mat x(B * T, 8);
  for (int i = 0; i < x.size(); ++i) x.data()[i] = rng.uniform(-1.f, 1.f);
  const std::vector<int> lengths = {5, 3};
  AttentionWeights w;
  const Mat y = blk.forward(x, B, T, {.key_lengths = lengths}, &w);
  AttentionWeights c = value_zeroing(blk, x, w);
  REQUIRE(c.H == 1);
  for (int b = 0; b < B; ++b) {
    const Mat xb = x.middleRows(b * T, T);
    const Mat yb = brute_force(blk, xb, lengths[b], -1);
    // The hand-written block agrees with the engine's forward (so the reference is the block).
    CHECK((yb - y.middleRows(b * T, T)).cwiseAbs().maxCoeff() < 1e-4f);
    for (int i = 0; i < T; ++i) {
      std::vector<double> want(T, 0.0);
      double sum = 0;
      for (int j = 0; j < lengths[b]; ++j) sum += want[j] = cos_dist(yb, brute_force(blk, xb, lengths[b], j), i);
      double row = 0;
      for (int j = 0; j < T; ++j) {
        CHECK(c.at(b, 0)[i * T + j] == doctest::Approx(want[j] / sum).epsilon(2e-3).scale(1e-3));
        row += c.at(b, 0)[i * T + j];
      }
      CHECK(row == doctest::Approx(1.0).epsilon(1e-5));   // each row sums to 1 (the paper's normalization)
    }
    for (int i = 0; i < T; ++i)
      for (int j = lengths[b]; j < T; ++j) CHECK(c.at(b, 0)[i * T + j] == 0.f);   // padding keys
  }
  AttentionWeights wrong;
  wrong.resize(1, 2, T, T);
  CHECK_THROWS_AS(value_zeroing(blk, x, wrong), std::invalid_argument);
}

TEST_CASE("mixing rollout multiplies the layers' maps, top layer on the left") {
  AttentionTensor a("encoder.layer0.mixing", 1, 2, 2), b("encoder.layer1.mixing", 1, 2, 2);
  a.data = {1, 0, 0.5f, 0.5f};
  b.data = {0.5f, 0.5f, 0, 1};
  Mat r = mixing_rollout({&a, &b});
  // B A = [[.5 .5],[0 1]] [[1 0],[.5 .5]] = [[.75 .25],[.5 .5]]
  CHECK(r(0, 0) == doctest::Approx(0.75));
  CHECK(r(0, 1) == doctest::Approx(0.25));
  CHECK(r(1, 0) == doctest::Approx(0.5));
  CHECK(r(1, 1) == doctest::Approx(0.5));
  CHECK(r.row(0).sum() == doctest::Approx(1.0));
}

TEST_CASE("the transformer translator records encoder.layerN.self.mixing when asked") {
  using namespace attnviz::models;
  TranslatorConfig cfg;
  cfg.arch = "transformer";
  cfg.layers = 2, cfg.heads = 2, cfg.dim = 8, cfg.ff = 16;
  auto m = make_translator(cfg, Vocabulary::build({{"a", "b", "c"}}), Vocabulary::build({{"x", "y"}}));
  m->init(1);
  const std::vector<int> src = {4, 5, 6}, tgt = {4, 5};
  RecordOptions what;
  what.mixing = true;
  AttentionRecord rec = m->record(src, tgt, what);
  AttentionRecord plain = m->record(src, tgt);
  REQUIRE(rec.tensors.size() == plain.tensors.size() + 3);   // two layers' maps and their rollout
  for (int l = 0; l < 2; ++l) {
    const AttentionTensor* mix = rec.find("encoder.layer" + std::to_string(l) + ".self.mixing");
    REQUIRE(mix);
    CHECK(mix->heads == 1);
    CHECK(mix->queries == 4);   // 3 words + <eos>
    CHECK(mix->keys == 4);
    CHECK(mix->key_axis == "source");
    for (int i = 0; i < 4; ++i) {
      double s = 0;
      for (int j = 0; j < 4; ++j) s += mix->at(0, i, j);
      CHECK(s == doctest::Approx(1.0).epsilon(1e-5));
    }
  }
  CHECK(rec.find("encoder.layer0.self")->data == plain.find("encoder.layer0.self")->data);
  Mat r = mixing_rollout({rec.find("encoder.layer0.self.mixing"), rec.find("encoder.layer1.self.mixing")});
  CHECK(r.row(2).sum() == doctest::Approx(1.0).epsilon(1e-5));
  const AttentionTensor* roll = rec.find("encoder.mixing_rollout");
  REQUIRE(roll);
  CHECK(roll->head(0).isApprox(r));
}
