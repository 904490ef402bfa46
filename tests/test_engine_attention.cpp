// Attention layers: multi-head self/cross gradients and masks, every scoring function step by
// step (the RNN-decoder use), attention pooling, recording into an AttentionRecord.
#include <doctest/doctest.h>

#include <attnviz/error.hpp>
#include <attnviz/engine/nn.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "test_engine_util.hpp"

using namespace attnviz;
using namespace attnviz::nn;
using test::check_all_gradients;
using test::randn;

TEST_CASE("multi-head self-attention: gradients, masks, recording changes nothing") {
  Rng rng(1);
  MultiHeadAttention mha({.dim = 8, .heads = 2});
  mha.init(rng);
  normal_init(mha.wq.bias.value, rng, 0.1f);
  ParamSet ps;
  mha.collect(ps, "attn");
  CHECK(ps.params().size() == 8);
  const int B = 3, T = 4;
  Mat x = randn(B * T, 8, rng);
  AttnMask mask{{4, 2, 0}, false};   // the third sequence is all padding
  check_all_gradients("mha", &x, ps, [&] { return mha.forward(x, B, T, mask); },
                      [&](const Mat& dy) { return mha.backward(dy); });
  Mat plain = mha.forward(x, B, T, mask);
  AttentionWeights w;
  Mat rec = mha.forward(x, B, T, mask, &w);
  CHECK((plain.array() == rec.array()).all());
  CHECK(rec.allFinite());
  CHECK(w.B == 3);
  CHECK(w.Nk == 4);
  for (int h = 0; h < 2; ++h) {
    const float* w1 = w.at(1, h);
    for (int i = 0; i < T; ++i) {
      CHECK(w1[i * T + 2] == 0.f);
      CHECK(w1[i * T + 3] == 0.f);
      CHECK(w1[i * T] + w1[i * T + 1] == doctest::Approx(1.f));
    }
    for (int i = 0; i < T * T; ++i) CHECK(w.at(2, h)[i] == 0.f);
  }
  // The all-padding sequence's output is just wo's bias (zero context).
  CHECK((rec.row(2 * T) - mha.wo.bias.value.row(0)).cwiseAbs().maxCoeff() < 1e-6f);

  AttentionTensor t = w.tensor(1, "encoder.layer0.self", "src", "src", 2, 2);
  CHECK(t.heads == 2);
  CHECK(t.queries == 2);
  CHECK(t.keys == 2);
  CHECK(t.at(1, 1, 0) == w.at(1, 1)[1 * T + 0]);
}

TEST_CASE("multi-head self-attention: the packed q|k|v projection equals three Linears; both backward forms agree") {
  Rng rng(3);
  for (int dense : {0, 64}) {   // the blocked kernel and the dense path
    MultiHeadAttention mha({.dim = 8, .heads = 2, .dense_max_keys = dense});
    mha.init(rng);
    normal_init(mha.wq.bias.value, rng, 0.1f);
    normal_init(mha.wk.bias.value, rng, 0.1f);
    normal_init(mha.wv.bias.value, rng, 0.1f);
    ParamSet ps;
    mha.collect(ps, "attn");
    const int B = 2, T = 5;
    const Mat x = randn(B * T, 8, rng);
    const Mat y = mha.forward(x, B, T);
    CHECK(mha.xq() == x);
    CHECK(mha.xkv() == x);
    CHECK((Mat(mha.q()) - mha.wq.apply(x)).cwiseAbs().maxCoeff() < 1e-5f);
    CHECK((Mat(mha.k()) - mha.wk.apply(x)).cwiseAbs().maxCoeff() < 1e-5f);
    CHECK((Mat(mha.v()) - mha.wv.apply(x)).cwiseAbs().maxCoeff() < 1e-5f);
    const Mat dy = randn(B * T, 8, rng);
    ps.zero_grad();
    const Mat dx = mha.backward(dy);
    std::vector<Mat> grads;
    for (const Param* p : ps.params()) grads.push_back(p->grad);
    mha.forward(Mat(x), B, T);   // the rvalue overload: the same numbers
    CHECK((Mat(mha.q()) - mha.wq.apply(x)).cwiseAbs().maxCoeff() < 1e-5f);
    ps.zero_grad();
    Mat dxkv;
    const Mat dxq = mha.backward(dy, dxkv);
    CHECK(dxkv.rows() == x.rows());
    CHECK((dxq + dxkv - dx).cwiseAbs().maxCoeff() < 1e-5f);
    for (size_t i = 0; i < grads.size(); ++i) CHECK((ps.params()[i]->grad - grads[i]).cwiseAbs().maxCoeff() < 1e-6f);
    CHECK(dx.allFinite());
    CHECK(y.allFinite());
  }
}

TEST_CASE("multi-head cross-attention gradients (different key width and lengths)") {
  Rng rng(2);
  MultiHeadAttention mha({.dim = 8, .heads = 4, .kv_dim = 6, .score = Score::Dot});
  mha.init(rng);
  ParamSet ps;
  mha.collect(ps, "cross");
  const int B = 2, Nq = 3, Nk = 5;
  Mat xq = randn(B * Nq, 8, rng), xkv = randn(B * Nk, 6, rng);
  AttnMask mask{{5, 3}, false};
  Mat dkv;
  check_all_gradients("cross.q", &xq, ps, [&] { return mha.forward(xq, xkv, B, Nq, Nk, mask); },
                      [&](const Mat& dy) { return mha.backward(dy, dkv); });
  ParamSet none;
  check_all_gradients("cross.kv", &xkv, none, [&] { return mha.forward(xq, xkv, B, Nq, Nk, mask); },
                      [&](const Mat& dy) { mha.backward(dy, dkv); return dkv; });
  CHECK(dkv.row(1 * Nk + 4).isZero(0));   // padded keys get no gradient
}

TEST_CASE("every scoring function, used step by step like an RNN decoder") {
  for (Score score : {Score::ScaledDot, Score::Dot, Score::General, Score::Additive}) {
    INFO(score_name(score));
    CHECK(parse_score(score_name(score)) == score);
    Rng rng(3);
    ScoredAttention att({.score = score, .query_dim = 5, .key_dim = 5, .hidden = 4});
    att.init(rng);
    ParamSet ps;
    att.collect(ps, "attn");
    const int B = 3, S = 4, steps = 2;
    Mat keys = randn(B * S, 5, rng);
    std::vector<Mat> qs = {randn(B, 5, rng), randn(B, 5, rng)};
    std::vector<int> lens = {4, 1, 0};
    std::vector<ScoredAttention::Cache> caches(steps);
    std::vector<AttentionWeights> ws(steps);
    // Output: both steps' contexts stacked, [steps*B, Dk].
    auto fwd = [&] {
      att.set_keys(keys, B, S, lens);
      Mat out(steps * B, 5);
      for (int t = 0; t < steps; ++t) out.middleRows(t * B, B) = att.forward(qs[t], 1, caches[t], &ws[t]);
      return out;
    };
    std::vector<Mat> dqs(steps);
    auto bwd = [&](const Mat& dy) {
      for (int t = steps - 1; t >= 0; --t) dqs[t] = att.backward(dy.middleRows(t * B, B), caches[t]);
      return att.keys_backward();
    };
    check_all_gradients(std::string("keys.") + score_name(score), &keys, ps, fwd, bwd);
    ParamSet none;
    for (int t = 0; t < steps; ++t)
      check_all_gradients(std::string("q.") + score_name(score), &qs[t], none, fwd, [&](const Mat& dy) {
        bwd(dy);
        return dqs[t];
      });
    // Masks: sequence 1 sees one key (weight 1), sequence 2 none (zeros, zero context).
    fwd();
    CHECK(ws[0].at(1, 0)[0] == doctest::Approx(1.f));
    for (int s = 0; s < S; ++s) CHECK(ws[0].at(2, 0)[s] == 0.f);
    Mat ctx = att.forward(qs[0], 1, caches[0]);
    CHECK(ctx.row(2).isZero(0));
    CHECK(ctx.allFinite());
  }
  CHECK_THROWS_AS(parse_score("cosine"), UsageError);
}

TEST_CASE("a loss on the weights themselves (dweights) flows back through the softmax") {
  // Output per step: [context | weights], so the checker's random dy puts a gradient on both.
  for (Score score : {Score::ScaledDot, Score::Dot, Score::General, Score::Additive}) {
    INFO(score_name(score));
    Rng rng(5);
    ScoredAttention att({.score = score, .query_dim = 5, .key_dim = 5, .hidden = 4});
    att.init(rng);
    ParamSet ps;
    att.collect(ps, "attn");
    const int B = 2, S = 4, steps = 2;
    Mat keys = randn(B * S, 5, rng);
    std::vector<Mat> qs = {randn(B, 5, rng), randn(B, 5, rng)};
    std::vector<int> lens = {4, 3};
    std::vector<ScoredAttention::Cache> caches(steps);
    auto fwd = [&] {
      att.set_keys(keys, B, S, lens);
      Mat out(steps * B, 5 + S);
      for (int t = 0; t < steps; ++t) {
        out.block(t * B, 0, B, 5) = att.forward(qs[t], 1, caches[t]);
        out.block(t * B, 5, B, S) = caches[t].w;
      }
      return out;
    };
    std::vector<Mat> dqs(steps);
    auto bwd = [&](const Mat& dy) {
      for (int t = steps - 1; t >= 0; --t) {
        Mat dw = dy.block(t * B, 5, B, S);
        dqs[t] = att.backward(dy.block(t * B, 0, B, 5), caches[t], &dw);
      }
      return att.keys_backward();
    };
    check_all_gradients(std::string("dweights.keys.") + score_name(score), &keys, ps, fwd, bwd);
    ParamSet none;
    check_all_gradients(std::string("dweights.q.") + score_name(score), &qs[1], none, fwd, [&](const Mat& dy) {
      bwd(dy);
      return dqs[1];
    });
    Mat wrong = Mat::Zero(B, S + 1);
    CHECK_THROWS_AS(att.backward(Mat::Zero(B, 5), caches[0], &wrong), std::invalid_argument);
    att.keys_backward();
  }
}

TEST_CASE("multi-head attention: the dense short-sequence path agrees with the blocked kernel, gradients") {
  for (bool causal : {false, true}) {
    INFO("causal " << causal);
    Rng rng(3);
    MultiHeadAttention blocked({.dim = 8, .heads = 2}), dense({.dim = 8, .heads = 2, .dense_max_keys = 5});
    blocked.init(rng);
    normal_init(blocked.wk.bias.value, rng, 0.1f);
    ParamSet pb, pd;
    blocked.collect(pb, "attn");
    dense.collect(pd, "attn");
    for (size_t i = 0; i < pb.params().size(); ++i) pd.params()[i]->value = pb.params()[i]->value;
    const int B = 3, T = 5;
    Mat x = randn(B * T, 8, rng), R = randn(B * T, 8, rng);
    AttnMask mask{{5, 2, 0}, causal};   // the third sequence is all padding
    AttentionWeights wb, wd;
    Mat yb = blocked.forward(x, B, T, mask, &wb);
    Mat yd = dense.forward(x, B, T, mask, &wd);
    CHECK(dense.dense_);
    CHECK(!blocked.dense_);
    CHECK((yb - yd).cwiseAbs().maxCoeff() < 1e-5f);
    CHECK(yd.allFinite());
    REQUIRE(wd.data.size() == wb.data.size());
    for (size_t i = 0; i < wd.data.size(); ++i) CHECK(wd.data[i] == doctest::Approx(wb.data[i]).epsilon(1e-5).scale(1e-6));
    Mat dxb = blocked.backward(R), dxd = dense.backward(R);
    CHECK((dxb - dxd).cwiseAbs().maxCoeff() < 1e-4f);
    // recording never changes the numbers on the dense path either
    Mat plain = dense.forward(x, B, T, mask);
    CHECK((plain.array() == yd.array()).all());
    check_all_gradients("mha.dense", &x, pd, [&] { return dense.forward(x, B, T, mask); },
                        [&](const Mat& dy) { return dense.backward(dy); });
    // longer than dense_max_keys: the blocked kernel
    Mat x6 = randn(B * 6, 8, rng);
    dense.forward(x6, B, 6, {});
    CHECK(!dense.dense_);
  }
}

TEST_CASE("multi-head attention: d(loss)/d(weights) matches central differences, 0 on hidden keys") {
  // The output as a function of the weights A with everything else fixed: y = concat_h(A_h v_h) wo + b.
  // The test rebuilds that function from the layer's cached v and wo, checks that it reproduces the
  // layer's own output at the layer's weights, then differentiates it numerically in A. Both paths.
  for (auto [causal, dense_keys] : {std::pair{false, 0}, {true, 0}, {false, 8}, {true, 8}}) {
    INFO("causal " << causal << " dense_max_keys " << dense_keys);
    Rng rng(11);
    MultiHeadAttention mha({.dim = 8, .heads = 2, .dense_max_keys = dense_keys});
    mha.init(rng);
    normal_init(mha.wo.bias.value, rng, 0.1f);
    const int B = 2, T = 5, H = 2, Dh = 4;
    Mat x = randn(B * T, 8, rng);
    AttnMask mask{{5, 3}, causal};
    AttentionWeights w, dw;
    Mat y = mha.forward(x, B, T, mask, &w);
    Mat R = randn(B * T, 8, rng);
    Mat dx = mha.backward(R, &dw);
    REQUIRE(dw.B == B);
    REQUIRE(dw.H == H);
    REQUIRE(dw.Nq == T);
    REQUIRE(dw.Nk == T);
    auto visible = [&](int b, int i, int j) { return j < mask.key_lengths[b] && (!causal || j <= i); };
    Mat A(B * H * T, T), dA(B * H * T, T);   // rows (b, h, i)
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < H; ++h)
        for (int i = 0; i < T; ++i)
          for (int j = 0; j < T; ++j) {
            A((b * H + h) * T + i, j) = w.at(b, h)[i * T + j];
            dA((b * H + h) * T + i, j) = dw.at(b, h)[i * T + j];
            if (!visible(b, i, j)) CHECK(dw.at(b, h)[i * T + j] == 0.f);
          }
    auto y_of = [&](const Mat& a) {
      Mat ctx = Mat::Zero(B * T, 8);
      for (int b = 0; b < B; ++b)
        for (int h = 0; h < H; ++h)
          for (int i = 0; i < T; ++i)
            for (int j = 0; j < T; ++j)
              if (visible(b, i, j))
                ctx.block(b * T + i, h * Dh, 1, Dh) += a((b * H + h) * T + i, j) * mha.v().block(b * T + j, h * Dh, 1, Dh);
      Mat out = ctx * mha.wo.weight.value;
      out.rowwise() += mha.wo.bias.value.row(0);
      return out;
    };
    CHECK((y_of(A) - y).cwiseAbs().maxCoeff() < 1e-5f);
    GradCheckOptions o;
    o.max_checks = 200;   // every entry
    auto r = check_gradient("mha.dweights", A, dA, [&] { return weighted_sum(y_of(A), R); }, o);
    CHECK_MESSAGE(r.ok, r.message);
    CHECK(r.checked == B * H * T * T);
    // Asking for d(weights) changes nothing else.
    mha.forward(x, B, T, mask);
    Mat dx_plain = mha.backward(R);
    CHECK((dx_plain.array() == dx.array()).all());
  }
}

TEST_CASE("scaled-dot scoring worked out by hand") {
  // One query q = (1, 0), keys (2, 0) and (0, 0): scores 2/sqrt(2), 0 -> weights sigmoid(sqrt 2).
  ScoredAttention att({.score = Score::ScaledDot, .query_dim = 2, .key_dim = 2});
  Mat keys(2, 2), q(1, 2);
  keys << 2, 0, 0, 0;
  q << 1, 0;
  att.set_keys(keys, 1, 2);
  ScoredAttention::Cache c;
  Mat ctx = att.forward(q, 1, c);
  const double w0 = 1 / (1 + std::exp(-std::sqrt(2.0)));
  CHECK(c.w(0, 0) == doctest::Approx(w0).epsilon(1e-6));
  CHECK(ctx(0, 0) == doctest::Approx(2 * w0).epsilon(1e-6));
}

TEST_CASE("attention pooling: gradients and masks") {
  for (Score score : {Score::Additive, Score::ScaledDot}) {
    INFO(score_name(score));
    Rng rng(4);
    AttentionPooling pool({.dim = 6, .score = score, .hidden = 5});
    pool.init(rng);
    ParamSet ps;
    pool.collect(ps, "pool");
    CHECK(ps.find("pool.query") != nullptr);
    const int B = 2, T = 5;
    Mat x = randn(B * T, 6, rng);
    std::vector<int> lens = {5, 3};
    AttentionWeights w;
    check_all_gradients(std::string("pool.") + score_name(score), &x, ps,
                        [&] { return pool.forward(x, B, T, lens, &w); },
                        [&](const Mat& dy) { return pool.backward(dy); });
    CHECK(w.Nq == 1);
    CHECK(w.at(1, 0)[3] == 0.f);
    CHECK(w.at(1, 0)[0] + w.at(1, 0)[1] + w.at(1, 0)[2] == doctest::Approx(1.f));
  }
}

TEST_CASE("recorded weights become a valid AttentionRecord tensor") {
  Rng rng(5);
  MultiHeadAttention mha({.dim = 8, .heads = 2});
  mha.init(rng);
  Mat x = randn(3, 8, rng);
  AttentionWeights w;
  mha.forward(x, 1, 3, {}, &w);
  AttentionRecord rec;
  rec.tokens["src"] = {"a", "b", "c"};
  rec.tensors.push_back(w.tensor(0, "encoder.layer0.self", "src", "src"));
  rec.validate("memory");
  CHECK(rec.tensors[0].data.size() == 2 * 3 * 3);
}

TEST_CASE("multi-head attention: the dense path at the ViT's shape (50 tokens, head dim 16) on every ISA") {
  // The fused dense kernel pads keys and head dims to the vector width (16, 8 or 4 floats): 50 keys
  // leave a remainder on every width, head dim 16 none, and key lengths 17 and 0 hide keys.
  const char* env = std::getenv("ATTNVIZ_ISA");
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  for (const char* isa : {"avx512", "avx2", "portable"}) {
    if ((std::string(isa) == "avx512" && !avx512) || (std::string(isa) == "avx2" && !avx2)) continue;
    set_kernel_isa(isa);
    for (bool causal : {false, true}) {
      INFO("isa " << isa << " causal " << causal);
      Rng rng(11);
      MultiHeadAttention blocked({.dim = 64, .heads = 4}), dense({.dim = 64, .heads = 4, .dense_max_keys = 64});
      blocked.init(rng);
      ParamSet pb, pd;
      blocked.collect(pb, "attn");
      dense.collect(pd, "attn");
      for (size_t i = 0; i < pb.params().size(); ++i) pd.params()[i]->value = pb.params()[i]->value;
      const int B = 3, T = 50;
      Mat x = randn(B * T, 64, rng, 2.f), R = randn(B * T, 64, rng);
      AttnMask mask{{50, 17, 0}, causal};
      AttentionWeights wb, wd;
      Mat yb = blocked.forward(x, B, T, mask, &wb);
      Mat yd = dense.forward(x, B, T, mask, &wd);
      REQUIRE(dense.dense_);
      CHECK((yb - yd).cwiseAbs().maxCoeff() < 1e-5f * std::max(1.f, yb.cwiseAbs().maxCoeff()));
      REQUIRE(wd.data.size() == wb.data.size());
      float worst = 0.f;
      for (size_t i = 0; i < wd.data.size(); ++i) worst = std::max(worst, std::abs(wd.data[i] - wb.data[i]));
      CHECK(worst < 2e-6f);
      for (int i = 0; i < T; ++i)   // hidden keys get weight 0 exactly
        for (int j = 17; j < T; ++j) CHECK(wd.at(1, 2)[i * T + j] == 0.f);
      Mat dxb = blocked.backward(R), dxd = dense.backward(R);
      CHECK((dxb - dxd).cwiseAbs().maxCoeff() < 1e-4f * std::max(1.f, dxb.cwiseAbs().maxCoeff()));
    }
  }
  set_kernel_isa(env && *env ? env : "best");
}
