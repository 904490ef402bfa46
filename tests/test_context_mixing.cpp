// Tests of context mixing by value zeroing (Mohebbi et al. 2023, nn::value_zeroing): against a
// brute-force rerun of the block with each token's value vector zeroed (attention written out
// here with plain loops), rows summing to 1 as the paper normalizes them, padding keys at 0, and
// the mixing rollout.
#include <attnviz/analysis/alignment.hpp>
#include <attnviz/analysis/context_mixing.hpp>
#include <attnviz/engine/context_mixing.hpp>
#include <attnviz/engine/rng.hpp>
#include <attnviz/models/translator.hpp>
#include <attnviz/record/record.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "test_util.hpp"

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

// Attention by hand, in double: q [Nq, D], k, v [Nk, D] (H heads side by side), keys >= len hidden,
// causal (query i sees keys <= i) or not, key `zero`'s value row zeroed (-1 = none). -> [Nq, D].
Mat attend_by_hand(const Mat& q, const Mat& k, Mat v, int H, int len, bool causal, int zero) {
  const int Nq = static_cast<int>(q.rows()), D = static_cast<int>(q.cols()), Dh = D / H;
  if (zero >= 0) v.row(zero).setZero();
  Mat ctx = Mat::Zero(Nq, D);
  for (int h = 0; h < H; ++h)
    for (int i = 0; i < Nq; ++i) {
      const int seen = causal ? std::min(len, i + 1) : len;
      std::vector<double> s(seen);
      double mx = -1e300, sum = 0;
      for (int j = 0; j < seen; ++j) {
        double d = 0;
        for (int e = 0; e < Dh; ++e) d += double(q(i, h * Dh + e)) * k(j, h * Dh + e);
        s[j] = d / std::sqrt(double(Dh));
        mx = std::max(mx, s[j]);
      }
      for (auto& e : s) sum += (e = std::exp(e - mx));
      for (int e = 0; e < Dh; ++e) {
        double c = 0;
        for (int j = 0; j < seen; ++j) c += s[j] / sum * v(j, h * Dh + e);
        ctx(i, h * Dh + e) = static_cast<float>(c);
      }
    }
  return ctx;
}

// The decoder block's output for one sequence (y [T, D] target rows, mem [S, D] its source memory,
// no padding) with target token zero_self's value zeroed in the self-attention and source token
// zero_cross's in the cross-attention (-1 = none), attention written out by hand.
Mat decoder_by_hand(const DecoderBlock& blk, const Mat& y, const Mat& mem, int zero_self, int zero_cross) {
  const int H = blk.opt.heads, T = static_cast<int>(y.rows()), S = static_cast<int>(mem.rows());
  LayerNorm ln1 = blk.ln1, ln2 = blk.ln2, ln3 = blk.ln3;
  Linear fc1 = blk.fc1, fc2 = blk.fc2;
  const MultiHeadAttention &sa = blk.self_attn, &ca = blk.cross_attn;
  const Mat u = ln1.forward(y);
  const Mat h1 = y + sa.wo.apply(attend_by_hand(sa.wq.apply(u), sa.wk.apply(u), sa.wv.apply(u), H, T, true, zero_self));
  const Mat u2 = ln2.forward(h1);
  const Mat h2 = h1 + ca.wo.apply(attend_by_hand(ca.wq.apply(u2), ca.wk.apply(mem), ca.wv.apply(mem), H, S, false, zero_cross));
  Mat a = fc1.forward(ln3.forward(h2));
  if (blk.opt.activation == Activation::Gelu) {
    Gelu g;
    a = g.forward(a);
  } else {
    Relu r;
    a = r.forward(a);
  }
  return h2 + fc2.forward(a);
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

TEST_CASE("decoder value zeroing, worked by hand: causal self mixing and cross mixing of a two-token block") {
  // D = 2, one head. Self- and cross-attention: W_Q = W_K = 0 (uniform weights over the visible
  // keys), W_V = W_O = I, no biases; MLP weights 0, so out = h2. y = [(1,0), (0,1)], memory
  // m = [(2,0), (0,2)]. LN1(y) = u = [(1,-1), (-1,1)] (up to eps). h1_0 = y_0 + u_0 = (2,-1),
  // h1_1 = y_1 + (u_0 + u_1)/2 = (0,1); the cross output is (m_0 + m_1)/2 = (1,1) for every row:
  // out_0 = (3,0), out_1 = (1,2).
  DecoderBlock blk({.dim = 2, .heads = 1, .mlp_hidden = 2, .memory_dim = 2});
  for (MultiHeadAttention* m : {&blk.self_attn, &blk.cross_attn}) {
    for (Linear* l : {&m->wq, &m->wk, &m->wv, &m->wo}) l->weight.value.setZero(), l->bias.value.setZero();
    m->wv.weight.value.setIdentity();
    m->wo.weight.value.setIdentity();
  }
  for (Linear* l : {&blk.fc1, &blk.fc2}) l->weight.value.setZero(), l->bias.value.setZero();
  Mat y(2, 2), mem(2, 2);
  y << 1, 0, 0, 1;
  mem << 2, 0, 0, 2;
  AttentionWeights sw, cw;
  const Mat out = blk.forward(y, mem, 1, 2, 2, {}, {}, {.self = &sw, .cross = &cw});
  CHECK(out(0, 0) == doctest::Approx(3.0).epsilon(1e-4));
  CHECK(out(1, 1) == doctest::Approx(2.0).epsilon(1e-4));
  const DecoderMixing c = value_zeroing(blk, y, sw, cw);
  const auto d = [](double ax, double ay, double bx, double by) {   // 1 - cos(a, b)
    return 1.0 - (ax * bx + ay * by) / (std::hypot(ax, ay) * std::hypot(bx, by));
  };
  // Self, row 0 sees only key 0: [1, 0]. Row 1: zeroing v_0 gives h1 = (-0.5, 1.5), out (0.5, 2.5);
  // zeroing v_1 gives h1 = (0.5, 0.5), out (1.5, 1.5).
  const double s10 = d(1, 2, 0.5, 2.5), s11 = d(1, 2, 1.5, 1.5);   // 0.035236, 0.051317
  CHECK(c.self.at(0, 0)[0] == doctest::Approx(1.0).epsilon(1e-5));
  CHECK(c.self.at(0, 0)[1] == 0.f);   // above the diagonal: exactly 0
  CHECK(c.self.at(0, 0)[2] == doctest::Approx(s10 / (s10 + s11)).epsilon(1e-4));   // 0.4071
  CHECK(c.self.at(0, 0)[3] == doctest::Approx(s11 / (s10 + s11)).epsilon(1e-4));   // 0.5929
  // Cross, row 0: zeroing m_0 gives out (2,0) (same direction: 0), zeroing m_1 gives (3,-1): [0, 1].
  // Row 1: zeroing m_0 gives (0,2), zeroing m_1 gives (1,1).
  const double c10 = d(1, 2, 0, 2), c11 = d(1, 2, 1, 1);           // 0.105573, 0.051317
  CHECK(c.cross.at(0, 0)[0] == doctest::Approx(0.0).scale(1.0).epsilon(1e-4));
  CHECK(c.cross.at(0, 0)[1] == doctest::Approx(1.0).epsilon(1e-4));
  CHECK(c.cross.at(0, 0)[2] == doctest::Approx(c10 / (c10 + c11)).epsilon(1e-4));  // 0.6729
  CHECK(c.cross.at(0, 0)[3] == doctest::Approx(c11 / (c10 + c11)).epsilon(1e-4));  // 0.3271
}

TEST_CASE("decoder value zeroing equals rerunning the block with each target / source value zeroed; a batch equals each sequence alone") {
  Rng rng(12);
  DecoderBlock blk({.dim = 8, .heads = 2, .mlp_hidden = 16, .memory_dim = 8});
  blk.init(rng);
  for (MultiHeadAttention* m : {&blk.self_attn, &blk.cross_attn})
    for (auto* p : {&m->wq.bias.value, &m->wv.bias.value, &m->wo.bias.value})
      for (int i = 0; i < p->size(); ++i) p->data()[i] = rng.uniform(-0.5f, 0.5f);
  for (int i = 0; i < blk.fc1.bias.value.size(); ++i) blk.fc1.bias.value.data()[i] = rng.uniform(-0.5f, 0.5f);
  const int B = 2, T = 5, S = 4, D = 8;
  Mat y(B * T, D), mem(B * S, D);
  for (int i = 0; i < y.size(); ++i) y.data()[i] = rng.uniform(-1.f, 1.f);
  for (int i = 0; i < mem.size(); ++i) mem.data()[i] = rng.uniform(-1.f, 1.f);
  const std::vector<int> tl = {5, 3}, sl = {4, 2};   // target and source lengths (padding in both)
  AttentionWeights sw, cw;
  const Mat out = blk.forward(y, mem, B, T, S, {.key_lengths = tl}, {.key_lengths = sl}, {.self = &sw, .cross = &cw});
  const DecoderMixing c = value_zeroing(blk, y, sw, cw);
  REQUIRE(c.self.B == B);
  REQUIRE(c.self.H == 1);
  REQUIRE(c.self.Nq == T);
  REQUIRE(c.self.Nk == T);
  REQUIRE(c.cross.H == 1);
  REQUIRE(c.cross.Nk == S);
  for (int b = 0; b < B; ++b) {
    INFO("sequence " << b);
    const Mat yb = y.middleRows(b * T, tl[b]), mb = mem.middleRows(b * S, sl[b]);
    const Mat ref = decoder_by_hand(blk, yb, mb, -1, -1);
    CHECK((ref - out.middleRows(b * T, tl[b])).cwiseAbs().maxCoeff() < 1e-4f);   // the reference is the block
    std::vector<Mat> zs, zc;
    for (int j = 0; j < tl[b]; ++j) zs.push_back(decoder_by_hand(blk, yb, mb, j, -1));
    for (int j = 0; j < sl[b]; ++j) zc.push_back(decoder_by_hand(blk, yb, mb, -1, j));
    for (int i = 0; i < tl[b]; ++i) {
      const float* rs = c.self.at(b, 0) + i * T;
      const float* rc = c.cross.at(b, 0) + i * S;
      double sum = 0, row = 0;
      std::vector<double> want(T, 0.0);
      for (int j = 0; j <= i; ++j) sum += want[j] = cos_dist(ref, zs[j], i);
      for (int j = 0; j < T; ++j) {
        if (j > i) CHECK(rs[j] == 0.f);   // causal: token j cannot reach row i < j
        else CHECK(rs[j] == doctest::Approx(want[j] / sum).epsilon(2e-3).scale(1e-3));
        row += rs[j];
      }
      CHECK(row == doctest::Approx(1.0).epsilon(1e-5));
      sum = row = 0;
      want.assign(S, 0.0);
      for (int j = 0; j < sl[b]; ++j) sum += want[j] = cos_dist(ref, zc[j], i);
      for (int j = 0; j < S; ++j) {
        if (j >= sl[b]) CHECK(rc[j] == 0.f);   // padding source keys
        else CHECK(rc[j] == doctest::Approx(want[j] / sum).epsilon(2e-3).scale(1e-3));
        row += rc[j];
      }
      CHECK(row == doctest::Approx(1.0).epsilon(1e-5));
    }
  }
  // Each sequence alone (no padding anywhere) gives the batch's maps on its rows and keys.
  for (int b = 0; b < B; ++b) {
    INFO("sequence " << b << " alone");
    DecoderBlock one = blk;
    AttentionWeights sw1, cw1;
    one.forward(y.middleRows(b * T, tl[b]), mem.middleRows(b * S, sl[b]), 1, tl[b], sl[b], {}, {},
                {.self = &sw1, .cross = &cw1});
    const DecoderMixing a = value_zeroing(one, y.middleRows(b * T, tl[b]), sw1, cw1);
    for (int i = 0; i < tl[b]; ++i) {
      for (int j = 0; j < tl[b]; ++j) CHECK(a.self.at(0, 0)[i * tl[b] + j] == doctest::Approx(c.self.at(b, 0)[i * T + j]).epsilon(1e-4).scale(1e-5));
      for (int j = 0; j < sl[b]; ++j) CHECK(a.cross.at(0, 0)[i * sl[b] + j] == doctest::Approx(c.cross.at(b, 0)[i * S + j]).epsilon(1e-4).scale(1e-5));
    }
  }
  AttentionWeights wrong;
  wrong.resize(1, 2, T, S);
  CHECK_THROWS_AS(value_zeroing(blk, y, sw, wrong), std::invalid_argument);
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
  // Encoder: two layers' maps and their rollout; decoder: self and cross maps of two layers and the
  // self maps' rollout.
  REQUIRE(rec.tensors.size() == plain.tensors.size() + 3 + 5);
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

TEST_CASE("the transformer translator records decoder.layerN.self.mixing, .cross.mixing and decoder.mixing_rollout; a batch equals each pair alone") {
  using namespace attnviz::models;
  TranslatorConfig cfg;
  cfg.arch = "transformer";
  cfg.layers = 2, cfg.heads = 2, cfg.dim = 8, cfg.ff = 16;
  auto m = make_translator(cfg, Vocabulary::build({{"a", "b", "c"}}), Vocabulary::build({{"x", "y"}}));
  m->init(3);
  std::vector<Example> ex = {{{4, 5, 6}, {4, 5}, {}}, {{5}, {5, 4, 4}, {}}, {{6, 4}, {4}, {}}};
  RecordOptions what;
  what.mixing = true;
  const AttentionRecord plain = m->record(ex[0].src, ex[0].tgt);
  const AttentionRecord rec = m->record(ex[0].src, ex[0].tgt, what);
  const int T = 3, S = 4;   // <bos> x y; a b c <eos>
  std::vector<const AttentionTensor*> self_maps;
  for (int l = 0; l < 2; ++l) {
    const std::string p = "decoder.layer" + std::to_string(l);
    const AttentionTensor *sm = rec.find(p + ".self.mixing"), *cm = rec.find(p + ".cross.mixing");
    REQUIRE(sm);
    REQUIRE(cm);
    self_maps.push_back(sm);
    CHECK(sm->heads == 1);
    CHECK(sm->queries == T);
    CHECK(sm->keys == T);
    CHECK(sm->query_axis == "target_input");
    CHECK(sm->key_axis == "target_input");
    CHECK(cm->queries == T);
    CHECK(cm->keys == S);
    CHECK(cm->query_axis == "target");
    CHECK(cm->key_axis == "source");
    for (int i = 0; i < T; ++i) {
      double a = 0, b = 0;
      for (int j = 0; j < T; ++j) a += sm->at(0, i, j);
      for (int j = 0; j < S; ++j) b += cm->at(0, i, j);
      for (int j = i + 1; j < T; ++j) CHECK(sm->at(0, i, j) == 0.f);
      CHECK(a == doctest::Approx(1.0).epsilon(1e-5));
      CHECK(b == doctest::Approx(1.0).epsilon(1e-5));
    }
    CHECK(rec.find(p + ".cross")->data == plain.find(p + ".cross")->data);   // recording changes no weight
  }
  const AttentionTensor* roll = rec.find("decoder.mixing_rollout");
  REQUIRE(roll);
  CHECK(roll->head(0).isApprox(mixing_rollout(self_maps)));
  CHECK(rec.find("decoder.cross_mixing_rollout") == nullptr);   // not defined (README)
  // A padded batch of three gives each pair's maps alone.
  AttentionCollector sink(false, false, true);
  std::vector<const Example*> batch;
  for (const auto& e : ex) batch.push_back(&e);
  m->forward(batch, &sink);
  for (size_t b = 0; b < ex.size(); ++b) {
    INFO("pair " << b);
    const AttentionRecord alone = m->record(ex[b].src, ex[b].tgt, what);
    const int Tb = static_cast<int>(ex[b].tgt.size()) + 1, Sb = static_cast<int>(ex[b].src.size()) + 1;
    for (const std::string name : {"encoder.layer1.self.mixing", "decoder.layer0.self.mixing", "decoder.layer1.self.mixing",
                                   "decoder.layer0.cross.mixing", "decoder.layer1.cross.mixing"}) {
      const bool enc = name[0] == 'e', cross = name.find("cross") != std::string::npos;
      const AttentionTensor got = sink.w.at(name).tensor(static_cast<int>(b), name, "", "", enc ? Sb : Tb, enc || cross ? Sb : Tb);
      const AttentionTensor* want = alone.find(name);
      REQUIRE(want);
      REQUIRE(got.data.size() == want->data.size());
      for (size_t k = 0; k < got.data.size(); ++k) CHECK(got.data[k] == doctest::Approx(want->data[k]).epsilon(1e-4).scale(1e-5));
    }
  }
}

TEST_CASE("CLI: record translate --record mixing, render heatmap and align on its maps; exit 2 for an RNN model") {
  using namespace attnviz::test;
  namespace fs = std::filesystem;
  const fs::path dir = temp_dir("mixing_mt");
  const std::string tf = (dir / "tf.safetensors").string(), rnn = (dir / "rnn.safetensors").string();
  auto r = run_cli("--threads 1 train translate --synthetic 40 --epochs 1 --batch 8 --arch transformer --dim 16 --heads 2 "
                   "--layers 2 --ff 16 -o '" + tf + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  r = run_cli("--threads 1 train translate --synthetic 40 --epochs 1 --batch 8 --embed 8 --hidden 8 -o '" + rnn + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  const std::string rec = (dir / "rec.safetensors").string();
  r = run_cli("--threads 1 record translate --model '" + tf + "' --synthetic 40 --from-corpus 0,1 --record mixing -o '" +
              rec + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  const auto recs = load_records(rec);
  REQUIRE(recs.size() == 2);
  for (const auto& x : recs) {
    for (int l = 0; l < 2; ++l) {
      const std::string p = "decoder.layer" + std::to_string(l);
      const AttentionTensor *c = x.find(p + ".cross.mixing"), *a = x.find(p + ".cross"), *s = x.find(p + ".self.mixing");
      REQUIRE(c != nullptr);
      REQUIRE(a != nullptr);
      REQUIRE(s != nullptr);
      CHECK(c->queries == a->queries);
      CHECK(c->keys == a->keys);
      CHECK(s->queries == a->queries);
      CHECK(s->keys == a->queries);
    }
    CHECK(x.find("decoder.mixing_rollout") != nullptr);
    CHECK(x.find("encoder.mixing_rollout") != nullptr);
  }
  for (const std::string t : {"decoder.layer1.cross.mixing", "decoder.layer0.self.mixing", "decoder.mixing_rollout"}) {
    const fs::path png = dir / (t + ".png");
    r = run_cli("render heatmap '" + rec + "' --tensor " + t + " -o '" + png.string() + "'");
    REQUIRE_MESSAGE(r.code == 0, r.out);
    CHECK(slurp(png).rfind("\x89PNG", 0) == 0);
  }
  r = run_cli("align '" + rec + "' --tensor decoder.layer1.cross.mixing");
  CHECK_MESSAGE(r.code == 0, r.out);
  CHECK(r.out.find('-') != std::string::npos);   // Pharaoh links i-j
  // An RNN model has no such maps: one line naming the file, exit 2, nothing written.
  r = run_cli("--threads 1 record translate --model '" + rnn + "' --synthetic 40 --from-corpus 0 --record mixing -o '" +
              (dir / "no.safetensors").string() + "'");
  CHECK(r.code == 2);
  CHECK(r.out.find(rnn) != std::string::npos);
  CHECK(r.out.find("--record mixing needs a transformer") != std::string::npos);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
  CHECK_FALSE(fs::exists(dir / "no.safetensors"));
}

// eval translate --mixing scores decoder.layerN.cross.mixing. The check: AER, precision, recall and
// the link counts of its JSON against the same pairs recorded by `record translate --from-corpus all
// --record mixing` and scored here: argmax written out over each map (rows: target words, columns:
// source words, <eos> left out) against the records' gold; itermax through extract_alignment.
TEST_CASE("CLI: eval translate --mixing scores each layer's cross mixing map as computed directly from a record") {
  using namespace attnviz::test;
  namespace fs = std::filesystem;
  const fs::path dir = temp_dir("mixing_eval");
  const std::string tf = (dir / "tf.safetensors").string(), rnn = (dir / "rnn.safetensors").string();
  auto r = run_cli("--threads 1 train translate --synthetic 60 --epochs 2 --batch 8 --arch transformer --dim 16 --heads 2 "
                   "--layers 2 --ff 16 -o '" + tf + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  const std::string rec = (dir / "rec.safetensors").string();
  r = run_cli("--threads 1 record translate --model '" + tf + "' --synthetic 30 --from-corpus all --record mixing -o '" +
              rec + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  const auto recs = load_records(rec);
  REQUIRE(recs.size() == 30);
  auto json_of = [](const RunResult& run) { return nlohmann::json::parse(run.out.substr(run.out.find('{'))); };
  const RunResult plain = run_cli("--threads 1 eval translate --model '" + tf + "' --synthetic 30 --json");
  REQUIRE_MESSAGE(plain.code == 0, plain.out);
  for (const std::string method : {"argmax", "itermax"}) {
    CAPTURE(method);
    r = run_cli("--threads 1 eval translate --model '" + tf + "' --synthetic 30 --mixing --json --method " + method);
    REQUIRE_MESSAGE(r.code == 0, r.out);
    const auto j = json_of(r);
    const auto& al = j.at("alignment");
    // The weights' rows first (as without --mixing), then one row per layer's mixing map.
    REQUIRE(al.size() == 4);
    CHECK(al[0].at("tensor") == "decoder.layer0.cross");
    CHECK(al[1].at("tensor") == "decoder.layer1.cross");
    CHECK(al[2].at("tensor") == "decoder.layer0.cross.mixing");
    CHECK(al[3].at("tensor") == "decoder.layer1.cross.mixing");
    if (method == "argmax")
      for (int l = 0; l < 2; ++l) CHECK(al[l].at("aer").get<double>() == json_of(plain).at("alignment")[l].at("aer").get<double>());
    for (int l = 0; l < 2; ++l) {
      const std::string name = "decoder.layer" + std::to_string(l) + ".cross.mixing";
      CAPTURE(name);
      long predicted = 0, sure = 0, a_s = 0, a_p = 0;
      std::vector<Alignment> pred, gold;
      for (const auto& x : recs) {
        const Alignment g = parse_pharaoh_line(x.metadata.at("gold"));
        gold.push_back(g);
        const AttentionTensor* t = x.find(name);
        REQUIRE(t != nullptr);
        const auto& src = x.tokens.at("source");
        const auto& tgt = x.tokens.at("target");
        REQUIRE(t->queries == static_cast<int>(tgt.size()));
        REQUIRE(t->keys == static_cast<int>(src.size()));
        if (method == "itermax") {
          pred.push_back(extract_alignment(alignment_matrix(x, {.tensor = name}).weights, {.method = AlignMethod::Itermax}));
          continue;
        }
        for (int q = 0; q < t->queries; ++q) {
          if (tgt[q] == "<eos>") continue;
          int best = -1;
          for (int k = 0; k < t->keys; ++k)
            if (src[k] != "<eos>" && (best < 0 || t->at(0, q, k) > t->at(0, q, best))) best = k;
          ++predicted;
          a_s += g.contains(best, q, true);
          a_p += g.contains(best, q);
        }
        for (const auto& link : g.links) sure += link.sure;
      }
      if (method == "itermax") {
        const AlignmentScore sc = score_alignments(pred, gold);
        predicted = sc.predicted, sure = sc.sure, a_s = sc.a_and_s, a_p = sc.a_and_p;
      }
      REQUIRE(predicted > 0);
      const auto& row = al[2 + l];
      CHECK(row.at("predicted").get<long>() == predicted);
      CHECK(row.at("sure").get<long>() == sure);
      CHECK(row.at("aer").get<double>() == doctest::Approx(1.0 - double(a_s + a_p) / double(predicted + sure)).epsilon(1e-12));
      CHECK(row.at("precision").get<double>() == doctest::Approx(double(a_p) / predicted).epsilon(1e-12));
      CHECK(row.at("recall").get<double>() == doctest::Approx(double(a_s) / sure).epsilon(1e-12));
    }
  }
  // The table names the maps; an RNN model has none: one line naming the file, exit 2.
  r = run_cli("--threads 1 eval translate --model '" + tf + "' --synthetic 30 --mixing");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(r.out.find("decoder.layer1.cross.mixing") != std::string::npos);
  r = run_cli("--threads 1 train translate --synthetic 40 --epochs 1 --batch 8 --embed 8 --hidden 8 -o '" + rnn + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  r = run_cli("--threads 1 eval translate --model '" + rnn + "' --synthetic 30 --mixing");
  CHECK(r.code == 2);
  CHECK(r.out.find(rnn) != std::string::npos);
  CHECK(r.out.find("--mixing needs a transformer") != std::string::npos);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
}
