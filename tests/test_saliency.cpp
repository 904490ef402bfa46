// Tests of the saliency analyses: rollout, flow and grad-rollout against hand-computed 2-layer
// examples, flow against a brute-force minimum cut, and the record-level entry points.
#include <attnviz/error.hpp>
#include <attnviz/analysis/saliency.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <random>

using namespace attnviz;
using doctest::Approx;

namespace {

AttentionTensor make(const std::string& name, const std::vector<Mat>& heads) {
  AttentionTensor t(name, static_cast<int>(heads.size()), static_cast<int>(heads[0].rows()),
                    static_cast<int>(heads[0].cols()));
  for (size_t h = 0; h < heads.size(); ++h) t.set_head(static_cast<int>(h), heads[h]);
  return t;
}

Mat m2(float a, float b, float c, float d) {
  Mat m(2, 2);
  m << a, b, c, d;
  return m;
}

// Layers of the worked example: W1 = [[1, 0], [.5, .5]], W2 = [[.5, .5], [0, 1]].
// Â1 = (W1 + I) row-normalised = [[1, 0], [.25, .75]]; Â2 = [[.75, .25], [0, 1]].
struct Example {
  AttentionTensor l0 = make("vit.layer0.self", {m2(1, 0, .5f, .5f)});
  AttentionTensor l1 = make("vit.layer1.self", {m2(.5f, .5f, 0, 1)});
  std::vector<const AttentionTensor*> layers() const { return {&l0, &l1}; }
};

}  // namespace

TEST_CASE("residual attention fuses heads, adds the identity and renormalises rows") {
  AttentionTensor t = make("x", {m2(1, 0, 0, 1), m2(0, 1, 1, 0)});
  Mat mean = residual_attention(t, {HeadFusion::Mean});
  CHECK(mean(0, 0) == Approx(0.75));
  CHECK(mean(0, 1) == Approx(0.25));
  CHECK(mean(1, 0) == Approx(0.25));
  Mat mx = residual_attention(t, {HeadFusion::Max});
  CHECK(mx(0, 0) == Approx(2.0 / 3));
  CHECK(mx(1, 0) == Approx(1.0 / 3));
  Mat mn = residual_attention(t, {HeadFusion::Min});
  CHECK(mn(0, 0) == Approx(1));
  CHECK(mn(0, 1) == Approx(0));

  // Discard: the 2 lowest off-diagonal weights (.05 at (2,0) and .1 at (0,2)) become zero.
  Mat w(3, 3);
  w << .6f, .3f, .1f, .2f, .2f, .6f, .05f, .45f, .5f;
  AttentionTensor t3 = make("y", {w});
  Mat d = residual_attention(t3, {HeadFusion::Mean, 0.25f});
  CHECK(d(0, 0) == Approx(1.6 / 1.9));
  CHECK(d(0, 1) == Approx(0.3 / 1.9));
  CHECK(d(0, 2) == Approx(0));
  CHECK(d(1, 0) == Approx(0.1));
  CHECK(d(1, 2) == Approx(0.3));
  CHECK(d(2, 0) == Approx(0));
  CHECK(d(2, 2) == Approx(1.5 / 1.95));
  for (int q = 0; q < 3; ++q) CHECK(d.row(q).sum() == Approx(1));
  CHECK_THROWS_AS(residual_attention(t3, {HeadFusion::Mean, 1.0f}), UsageError);
}

TEST_CASE("rollout multiplies the layers, the last on the left") {
  Example ex;
  Mat r = attention_rollout(ex.layers());
  // R = Â2 Â1 = [[.75*1 + .25*.25, .25*.75], [.25, .75]]
  CHECK(r(0, 0) == Approx(0.8125));
  CHECK(r(0, 1) == Approx(0.1875));
  CHECK(r(1, 0) == Approx(0.25));
  CHECK(r(1, 1) == Approx(0.75));
  // Order matters: swapping the layers gives a different product.
  Mat swapped = attention_rollout({&ex.l1, &ex.l0});
  CHECK(swapped(0, 0) == Approx(0.75));
}

TEST_CASE("flow: max-flow through the layered graph, worked by hand") {
  Example ex;
  // Edges a_k -> b_q with capacity Â1[q, k], b_k -> c_q with Â2[q, k].
  // a0 -> c0: a0-b0-c0 carries min(1, .75) = .75, a0-b1-c0 carries min(.25, .25) = .25: total 1.
  // a1 -> c0: only a1-b1-c0, min(.75, .25) = .25.
  auto f = attention_flow(ex.layers(), 0);
  CHECK(f[0] == Approx(1.0));
  CHECK(f[1] == Approx(0.25));
  // a0 -> c1: a0-b1-c1 = .25; a1 -> c1: a1-b1-c1 = .75
  auto f1 = attention_flow(ex.layers(), 1);
  CHECK(f1[0] == Approx(0.25));
  CHECK(f1[1] == Approx(0.75));
  CHECK_THROWS_AS(attention_flow(ex.layers(), 2), UsageError);
}

TEST_CASE("flow equals the brute-force minimum cut on random 3-layer graphs") {
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  const int n = 3, L = 3;
  for (int trial = 0; trial < 5; ++trial) {
    std::vector<AttentionTensor> ts;
    for (int l = 0; l < L; ++l) {
      Mat a(n, n);
      for (int i = 0; i < n * n; ++i) a.data()[i] = u(gen);
      for (int q = 0; q < n; ++q) a.row(q) /= a.row(q).sum();
      ts.push_back(make("enc.layer" + std::to_string(l) + ".self", {a}));
    }
    std::vector<const AttentionTensor*> layers;
    for (auto& t : ts) layers.push_back(&t);
    std::vector<Mat> hat;
    for (auto& t : ts) hat.push_back(residual_attention(t));
    const int out = trial % n;
    auto flow = attention_flow(layers, out);
    const int nodes = (L + 1) * n;
    for (int src = 0; src < n; ++src) {
      // Enumerate every s-t cut: node v is on the source side when bit v of mask is set.
      double best = std::numeric_limits<double>::infinity();
      const int sink = L * n + out;
      for (int mask = 0; mask < (1 << nodes); ++mask) {
        if (!(mask >> src & 1) || (mask >> sink & 1)) continue;
        double cut = 0;
        for (int l = 0; l < L; ++l)
          for (int k = 0; k < n; ++k)
            for (int q = 0; q < n; ++q) {
              int a = l * n + k, b = (l + 1) * n + q;
              if ((mask >> a & 1) && !(mask >> b & 1)) cut += hat[l](q, k);
            }
        best = std::min(best, cut);
      }
      CHECK(flow[src] == Approx(best).epsilon(1e-5));
    }
  }
}

TEST_CASE("grad-rollout weights attention by its gradient, keeps the positive part, rolls out") {
  // Layer 0, two heads: g0*W0 = [[1, 0], [1, 0]]; (g1*W1)+ = [[0, 1], [0, 1]]; mean = all .5.
  //   R = I + Ā R = [[1.5, .5], [.5, 1.5]]
  // Layer 1: (g*W)+ = [[1, 0], [0, .8]]; R = R + Ā R = [[3, 1], [.9, 2.7]]
  AttentionTensor w0 = make("vit.layer0.self", {m2(1, 0, .5f, .5f), m2(.5f, .5f, 0, 1)});
  AttentionTensor g0 = make("vit.layer0.self", {m2(1, -1, 2, 0), m2(-1, 2, 1, 1)});
  AttentionTensor w1 = make("vit.layer1.self", {m2(.5f, .5f, .2f, .8f)});
  AttentionTensor g1 = make("vit.layer1.self", {m2(2, 0, -1, 1)});
  Mat r = grad_rollout({&w0, &w1}, {&g0, &g1});
  CHECK(r(0, 0) == Approx(3));
  CHECK(r(0, 1) == Approx(1));
  CHECK(r(1, 0) == Approx(0.9));
  CHECK(r(1, 1) == Approx(2.7));

  AttentionRecord rec;
  rec.tensors = {w0, w1};
  SaliencyOptions o;
  o.method = SaliencyMethod::GradRollout;
  CHECK_THROWS_WITH_AS(token_saliency(rec, o, "r.safetensors"),
                       doctest::Contains("r.safetensors: grad-rollout needs attention gradients"), InputError);
  rec.gradients = {g0, g1};
  auto s = token_saliency(rec, o, "r.safetensors");
  CHECK(s[0] == Approx(3));
  CHECK(s[1] == Approx(1));
}

TEST_CASE("record entry points: stack discovery, CLS row, patch grid layout, pooling records") {
  // CLS + a 2x2 patch grid: N = 5, 2 layers, 2 heads.
  AttentionRecord rec;
  std::mt19937 gen(3);
  std::uniform_real_distribution<float> u(0.1f, 1.f);
  for (int l = 0; l < 2; ++l) {
    std::vector<Mat> hs;
    for (int h = 0; h < 2; ++h) {
      Mat a(5, 5);
      for (int i = 0; i < 25; ++i) a.data()[i] = u(gen);
      for (int q = 0; q < 5; ++q) a.row(q) /= a.row(q).sum();
      hs.push_back(a);
    }
    rec.tensors.push_back(make("vit.layer" + std::to_string(l) + ".self", hs));
  }
  rec.tensors.push_back(make("decoder.layer0.cross", {Mat::Constant(3, 5, 0.2f)}));
  RecordImage im;
  im.height = im.width = 4;
  im.pixels.assign(16, 0.f);
  im.patch_rows = im.patch_cols = 2;
  im.prefix_tokens = 1;
  rec.image = im;

  auto layers = self_attention_layers(rec, "");
  REQUIRE(layers.size() == 2);
  CHECK(layers[0]->name == "vit.layer0.self");
  CHECK_THROWS_AS(self_attention_layers(rec, "encoder", "f"), InputError);

  SaliencyOptions o;
  o.method = SaliencyMethod::Cls;
  Mat m = patch_saliency(rec, o);
  Mat mean = rec.tensors[1].mean_heads();
  REQUIRE(m.rows() == 2);
  CHECK(m(0, 0) == Approx(mean(0, 1)));
  CHECK(m(0, 1) == Approx(mean(0, 2)));
  CHECK(m(1, 0) == Approx(mean(0, 3)));
  CHECK(m(1, 1) == Approx(mean(0, 4)));
  o.head = 1;
  o.layer = 0;
  CHECK(patch_saliency(rec, o)(1, 1) == Approx(rec.tensors[0].at(1, 0, 4)));
  o.head = 2;
  CHECK_THROWS_AS(patch_saliency(rec, o), UsageError);

  o = {};
  o.method = SaliencyMethod::Rollout;
  Mat r = attention_rollout(layers);
  CHECK(patch_saliency(rec, o)(1, 0) == Approx(r(0, 3)));
  o.method = SaliencyMethod::Flow;
  auto fl = attention_flow(layers, 0);
  CHECK(patch_saliency(rec, o)(0, 1) == Approx(fl[2]));

  // A pooling record: one single-query tensor over the 4 patches.
  AttentionRecord pool;
  Mat w(1, 4);
  w << .1f, .2f, .3f, .4f;
  pool.tensors.push_back(make("pool", {w}));
  pool.image = im;
  pool.image->prefix_tokens = 0;
  Mat pm = patch_saliency(pool, o);
  CHECK(pm(1, 1) == Approx(0.4));
  CHECK(pm(0, 1) == Approx(0.2));

  AttentionRecord noimg;
  noimg.tensors = rec.tensors;
  CHECK_THROWS_WITH_AS(patch_saliency(noimg, o, "a.npz"), doctest::Contains("a.npz: the record has no image"),
                       InputError);
  CHECK(parse_saliency_method("grad-rollout") == SaliencyMethod::GradRollout);
  CHECK_THROWS_AS(parse_saliency_method("lrp"), UsageError);
}
