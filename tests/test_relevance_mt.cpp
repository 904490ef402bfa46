// Tests of the transformer translator's relevance (Chefer, Gur & Wolf 2021, encoder-decoder rules):
// the decoder block's attention-map gradients against central differences, conservation of the
// decoder block's LRP rule, a one-layer R^ts update worked by hand, batch = alone on a tiny
// translator, and the CLI end to end (record, align, eval; exit 2 for an RNN model).
#include "gradcheck.hpp"
#include <attnviz/analysis/saliency.hpp>
#include <attnviz/engine/blocks.hpp>
#include <attnviz/engine/optim.hpp>
#include <attnviz/engine/relevance.hpp>
#include <attnviz/engine/rng.hpp>
#include <attnviz/error.hpp>
#include <attnviz/models/translator.hpp>
#include <attnviz/record/record.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "test_util.hpp"

using namespace attnviz;
using namespace attnviz::nn;
using namespace attnviz::test;

namespace {

Mat randn(Eigen::Index r, Eigen::Index c, Rng& rng) {
  Mat m(r, c);
  normal_init(m, rng, 1.f);
  return m;
}

// ctx rows b*Nq+i, head h columns: sum over visible keys j of A[(b,h,i), j] * V[b*Nk+j, head h].
Mat attend_fixed(const Mat& A, const Mat& V, int B, int H, int Nq, int Nk, const AttnMask& mask) {
  const int Dh = static_cast<int>(V.cols()) / H;
  Mat ctx = Mat::Zero(static_cast<Eigen::Index>(B) * Nq, V.cols());
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < Nq; ++i)
        for (int j = 0; j < Nk; ++j) {
          const bool visible = j < mask.key_lengths[b] && (!mask.causal || j <= i);
          if (visible)
            ctx.block(b * Nq + i, h * Dh, 1, Dh) += A((b * H + h) * Nq + i, j) * V.block(b * Nk + j, h * Dh, 1, Dh);
        }
  return ctx;
}

Mat rows_of(const AttentionWeights& w) {   // [B, H, Nq, Nk] -> rows (b, h, i), columns j
  Mat m(static_cast<Eigen::Index>(w.B) * w.H * w.Nq, w.Nk);
  for (int b = 0; b < w.B; ++b)
    for (int h = 0; h < w.H; ++h) m.middleRows((static_cast<Eigen::Index>(b) * w.H + h) * w.Nq, w.Nq) = ConstMatMap(w.at(b, h), w.Nq, w.Nk);
  return m;
}

}  // namespace

TEST_CASE("decoder block: gradients of the self- and cross-attention maps match central differences") {
  Rng rng(21);
  DecoderBlock blk({.dim = 8, .heads = 2, .mlp_hidden = 12, .memory_dim = 6});
  blk.init(rng);
  normal_init(blk.self_attn.wo.bias.value, rng, 0.1f);
  const int B = 2, T = 4, S = 5, H = 2;
  Mat y = randn(B * T, 8, rng), mem = randn(B * S, 6, rng), R = randn(B * T, 8, rng);
  AttnMask smask{{4, 3}, true}, cmask{{5, 3}, false};
  AttentionWeights ws, wc, gs, gc;
  const Mat out = blk.forward(y, mem, B, T, S, smask, cmask, {&ws, &wc});
  Mat dmem;
  blk.backward(R, dmem, {.self = &gs, .cross = &gc});
  REQUIRE(gs.Nq == T);
  REQUIRE(gc.Nk == S);
  // The block's forward rebuilt with one map held as a free input, everything downstream recomputed.
  auto rest = [&](DecoderBlock& ref, const Mat& h1, const Mat* Ac) {
    Mat c = Ac ? ref.cross_attn.wo.apply(attend_fixed(*Ac, ref.cross_attn.wv.apply(mem), B, H, T, S, cmask))
               : ref.cross_attn.forward(ref.ln2.forward(h1), mem, B, T, S, cmask);
    Mat h2 = h1 + c;
    return Mat(h2 + ref.fc2.forward(ref.gelu.forward(ref.fc1.forward(ref.ln3.forward(h2)))));
  };
  auto out_self = [&](const Mat& As) {
    DecoderBlock ref = blk;
    const Mat ctx = attend_fixed(As, ref.self_attn.wv.apply(ref.ln1.forward(y)), B, H, T, T, smask);
    return rest(ref, y + ref.self_attn.wo.apply(ctx), nullptr);
  };
  auto out_cross = [&](const Mat& Ac) {
    DecoderBlock ref = blk;
    const Mat h1 = y + ref.self_attn.forward(ref.ln1.forward(y), B, T, smask);
    return rest(ref, h1, &Ac);
  };
  Mat As = rows_of(ws), Ac = rows_of(wc);
  CHECK((out_self(As) - out).cwiseAbs().maxCoeff() < 1e-4f);
  CHECK((out_cross(Ac) - out).cwiseAbs().maxCoeff() < 1e-4f);
  GradCheckOptions o;
  o.eps = 3e-3;
  o.max_checks = 200;   // every entry
  auto r = check_gradient("decoder.self weights", As, rows_of(gs), [&] { return weighted_sum(out_self(As), R); }, o);
  CHECK_MESSAGE(r.ok, r.message);
  CHECK(r.checked == B * H * T * T);
  r = check_gradient("decoder.cross weights", Ac, rows_of(gc), [&] { return weighted_sum(out_cross(Ac), R); }, o);
  CHECK_MESSAGE(r.ok, r.message);
  CHECK(r.checked == B * H * T * S);
  // Hidden keys (causal, padding) get no gradient; asking for the maps changes nothing else.
  CHECK(gs.at(0, 1)[0 * T + 1] == 0.f);
  CHECK(gc.at(1, 0)[0 * S + 4] == 0.f);
  Mat dmem2;
  blk.forward(y, mem, B, T, S, smask, cmask);
  const Mat dy2 = blk.backward(R, dmem2);
  blk.forward(y, mem, B, T, S, smask, cmask);
  const Mat dy1 = blk.backward(R, dmem, {.self = &gs, .cross = &gc});
  CHECK((dy1.array() == dy2.array()).all());
  CHECK((dmem.array() == dmem2.array()).all());
}

TEST_CASE("decoder block LRP: relevance in = relevance out, per sentence, and linear") {
  // D = 32: every Linear output column has some positive contribution, so no relevance is dropped.
  Rng rng(5);
  DecoderBlock blk({.dim = 32, .heads = 4, .mlp_hidden = 48, .memory_dim = 24, .activation = Activation::Relu});
  blk.init(rng);
  const int B = 2, T = 5, S = 6;
  Mat y = randn(B * T, 32, rng), mem = randn(B * S, 24, rng);
  AttnMask smask{{5, 3}, true}, cmask{{6, 4}, false};
  AttentionWeights ws, wc;
  blk.forward(y, mem, B, T, S, smask, cmask, {&ws, &wc});
  Mat R = Mat::Zero(B * T, 32);
  for (int b = 0; b < B; ++b)   // relevance on the real target rows only, as a logit's seed puts it
    for (int t = 0; t < smask.key_lengths[b]; ++t)
      for (int d = 0; d < 32; ++d) R(b * T + t, d) = rng.uniform();
  const DecoderRelevance rel = lrp_decoder_block(blk, y, ws, wc, R);
  REQUIRE(rel.target_input.rows() == B * T);
  REQUIRE(rel.memory.rows() == B * S);
  REQUIRE(rel.memory.cols() == 24);
  for (int b = 0; b < B; ++b) {
    const double in = R.middleRows(b * T, T).cast<double>().sum();
    const double outs = rel.target_input.middleRows(b * T, T).cast<double>().sum() +
                        rel.memory.middleRows(b * S, S).cast<double>().sum();
    CHECK(outs == doctest::Approx(in).epsilon(1e-4));
    // Padded source rows receive nothing.
    for (int j = cmask.key_lengths[b]; j < S; ++j) CHECK(rel.memory.row(b * S + j).cwiseAbs().maxCoeff() == 0.f);
  }
  CHECK(rel.self.Nq == T);
  CHECK(rel.cross.Nk == S);
  const DecoderRelevance rel2 = lrp_decoder_block(blk, y, ws, wc, 2 * R);
  CHECK((rel2.target_input - 2 * rel.target_input).cwiseAbs().maxCoeff() < 1e-4f * rel.target_input.cwiseAbs().maxCoeff());
  // Shapes of another pass are refused.
  CHECK_THROWS_AS(lrp_decoder_block(blk, Mat(y.topRows(T)), ws, wc, Mat(R.topRows(T))), std::invalid_argument);
}

TEST_CASE("encoder-decoder relevance: one encoder and one decoder layer worked by hand") {
  // Encoder: R^ss = I + Ae = [[1.2, .2], [0, 1.5]]; R^ = Ae, row sums .4 and .5 -> R̄^ss = [[1.5, .5], [0, 2]].
  Mat ae(2, 2), as(2, 2), ac(2, 2);
  ae << 0.2f, 0.2f, 0.f, 0.5f;
  // Decoder self: R^tt = I + As = [[1, 0], [.3, 1.1]]; R^ts stays 0. R̄^tt: row 0 of R^ is 0 (kept),
  // row 1 [.3, .1] / .4 -> R̄^tt = [[1, 0], [.75, 1.25]].
  as << 0.f, 0.f, 0.3f, 0.1f;
  // Cross: Ac R̄^ss = [[0, 0], [.6, .4]]; (R̄^tt)^T that = [[.45, .3], [.75, .5]].
  ac << 0.f, 0.f, 0.4f, 0.1f;
  const Mat n = normalize_self_relevance(Mat(Mat::Identity(2, 2) + ae));
  CHECK(n(0, 0) == doctest::Approx(1.5));
  CHECK(n(0, 1) == doctest::Approx(0.5));
  CHECK(n(1, 1) == doctest::Approx(2.0));
  const EncoderDecoderRelevance r = encoder_decoder_relevance({ae}, {as}, {ac});
  CHECK(r.source(0, 1) == doctest::Approx(0.2));
  CHECK(r.source(1, 1) == doctest::Approx(1.5));
  CHECK(r.target(1, 0) == doctest::Approx(0.3));
  CHECK(r.target(1, 1) == doctest::Approx(1.1));
  CHECK(r.target(0, 1) == 0.f);
  CHECK(r.target_source(0, 0) == doctest::Approx(0.45));
  CHECK(r.target_source(0, 1) == doctest::Approx(0.3));
  CHECK(r.target_source(1, 0) == doctest::Approx(0.75));
  CHECK(r.target_source(1, 1) == doctest::Approx(0.5));
  // A second decoder layer: its self-attention first mixes the target rows' source relevance
  // (eq. 7: R^ts += As2 R^ts), then its cross-attention adds as above.
  Mat as2 = Mat::Zero(2, 2), ac2 = Mat::Zero(2, 2);
  as2(1, 0) = 0.5f;
  const EncoderDecoderRelevance r2 = encoder_decoder_relevance({ae}, {as, as2}, {ac, ac2});
  CHECK(r2.target_source(1, 0) == doctest::Approx(0.75 + 0.5 * 0.45));
  CHECK(r2.target_source(1, 1) == doctest::Approx(0.5 + 0.5 * 0.3));
  // Gradient-weighted head average: mean over heads of the positive part of grad x weights.
  AttentionTensor w("w", 2, 1, 2), g("g", 2, 1, 2);
  w.data = {0.5f, 0.5f, 1.f, 0.f};
  g.data = {2.f, -1.f, 0.4f, 3.f};
  const Mat abar = gradient_weighted_heads(w, g);
  CHECK(abar(0, 0) == doctest::Approx((1.0 + 0.4) / 2));
  CHECK(abar(0, 1) == doctest::Approx(0.0));
  CHECK_THROWS(encoder_decoder_relevance({ae}, {as}, {}));
}

namespace {
std::unique_ptr<models::Translator> tiny_translator(const std::string& arch) {
  std::vector<std::vector<std::string>> s = {{"a", "b", "c", "d"}, {"e", "f"}}, t = {{"w", "x", "y"}, {"z"}};
  models::TranslatorConfig cfg;
  cfg.arch = arch;
  cfg.dim = 16, cfg.heads = 2, cfg.layers = 2, cfg.ff = 24, cfg.max_len = 20, cfg.embed = 8, cfg.hidden = 8;
  auto m = models::make_translator(cfg, Vocabulary::build(s), Vocabulary::build(t));
  m->init(4);
  return m;
}
}  // namespace

TEST_CASE("translator relevance: shapes, a batch equals each sentence alone, the RNN refuses") {
  auto m = tiny_translator("transformer");
  std::vector<models::Example> ex = {{m->encode_source({"a", "b", "c", "d"}), m->encode_target({"w", "x", "y"}), {}},
                                     {m->encode_source({"e"}), m->encode_target({"z", "w"}), {}},
                                     {m->encode_source({"f", "a"}), m->encode_target({"x"}), {}}};
  std::vector<const models::Example*> batch;
  for (const auto& e : ex) batch.push_back(&e);
  const auto all = m->relevance(batch);
  REQUIRE(all.size() == 3);
  for (size_t b = 0; b < ex.size(); ++b) {
    INFO("sentence " << b);
    const auto alone = m->relevance({&ex[b]});
    REQUIRE(alone.size() == 1);
    REQUIRE(all[b].size() == 4);
    REQUIRE(alone[0].size() == 4);
    const int T = static_cast<int>(ex[b].tgt.size()) + 1, S = static_cast<int>(ex[b].src.size()) + 1;
    for (size_t k = 0; k < 4; ++k) {
      const AttentionTensor &x = all[b][k], &y = alone[0][k];
      CHECK(x.name == y.name);
      CHECK(x.heads == 1);
      CHECK(x.queries == T);
      CHECK(x.keys == (x.name.find("cross") != std::string::npos ? S : T));
      REQUIRE(x.data.size() == y.data.size());
      float worst = 0, scale = 0;
      for (size_t i = 0; i < x.data.size(); ++i) {
        worst = std::max(worst, std::abs(x.data[i] - y.data[i]));
        scale = std::max(scale, std::abs(y.data[i]));
        CHECK(std::isfinite(x.data[i]));
      }
      CHECK(scale > 0);
      CHECK(worst <= 1e-4f * scale);
    }
    // R^ts and R^tt are built from positive parts: never negative; R^tt is causal (row t sees <= t).
    const AttentionTensor& cross = all[b][0];
    for (float v : cross.data) CHECK(v >= 0.f);
    const AttentionTensor& self = all[b][1];
    CHECK(self.name == "decoder.relevance_self");
    for (int t = 0; t < T; ++t)
      for (int k = t + 1; k < T; ++k) CHECK(self.at(0, t, k) == 0.f);
  }
  // record() appends the four maps after the attention.
  const AttentionRecord rec = m->record(ex[0].src, ex[0].tgt, {.relevance = true});
  REQUIRE(rec.find("decoder.relevance_cross") != nullptr);
  CHECK(rec.find("decoder.relevance_cross")->query_axis == "target");
  CHECK(rec.find("decoder.relevance_cross")->key_axis == "source");
  CHECK(rec.find("decoder.lrp_relevance_self") != nullptr);
  CHECK(m->record(ex[0].src, ex[0].tgt).find("decoder.relevance_cross") == nullptr);
  auto rnn = tiny_translator("rnn");
  CHECK_THROWS_AS(rnn->relevance(batch), InputError);
}

TEST_CASE("CLI: record translate --record relevance, align and eval on it; exit 2 for an RNN model") {
  const fs::path dir = temp_dir("relevance_mt");
  const std::string tf = (dir / "tf.safetensors").string(), rnn = (dir / "rnn.safetensors").string();
  auto r = run_cli("--threads 1 train translate --synthetic 40 --epochs 1 --batch 8 --arch transformer --dim 16 --heads 2 "
                   "--layers 1 --ff 16 -o '" + tf + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  r = run_cli("--threads 1 train translate --synthetic 40 --epochs 1 --batch 8 --embed 8 --hidden 8 -o '" + rnn + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  const std::string rec = (dir / "rec.safetensors").string();
  r = run_cli("--threads 1 record translate --model '" + tf + "' --synthetic 40 --from-corpus 0,1 --record relevance -o '" +
              rec + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  const auto recs = load_records(rec);
  REQUIRE(recs.size() == 2);
  for (const auto& x : recs) {
    const AttentionTensor* c = x.find("decoder.relevance_cross");
    REQUIRE(c != nullptr);
    const AttentionTensor* a = x.find("decoder.layer0.cross");
    REQUIRE(a != nullptr);
    CHECK(c->heads == 1);
    CHECK(c->queries == a->queries);
    CHECK(c->keys == a->keys);
    CHECK(x.find("decoder.relevance_self") != nullptr);
    CHECK(x.find("decoder.lrp_relevance_cross") != nullptr);
  }
  r = run_cli("align '" + rec + "' --tensor decoder.relevance_cross");
  CHECK_MESSAGE(r.code == 0, r.out);
  r = run_cli("--threads 1 eval translate --model '" + tf + "' --synthetic 40 --relevance");
  CHECK_MESSAGE(r.code == 0, r.out);
  CHECK(r.out.find("decoder.relevance_cross") != std::string::npos);
  CHECK(r.out.find("decoder.lrp_relevance_cross") != std::string::npos);
  // An RNN model has no relevance: one clear line, exit 2.
  r = run_cli("--threads 1 record translate --model '" + rnn + "' --synthetic 40 --from-corpus 0 --record relevance -o '" +
              (dir / "no.safetensors").string() + "'");
  CHECK(r.code == 2);
  CHECK(r.out.find("needs a transformer") != std::string::npos);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
  CHECK_FALSE(fs::exists(dir / "no.safetensors"));
  r = run_cli("--threads 1 eval translate --model '" + rnn + "' --synthetic 40 --relevance");
  CHECK(r.code == 2);
  CHECK(r.out.find("needs a transformer") != std::string::npos);
  // record mnist takes the same spelling.
  CHECK(run_cli("record mnist --help").out.find("relevance") != std::string::npos);
}
