// Training support: cross-entropy, Adam/AdamW, clipping, schedule, init, parameter files, and
// bitwise-identical training for the same seed and thread count.
#include "gradcheck.hpp"
#include <doctest/doctest.h>

#include <attnviz/error.hpp>
#include <attnviz/engine/nn.hpp>

#include <cmath>
#include <omp.h>

#include "test_engine_util.hpp"
#include "test_util.hpp"

using namespace attnviz;
using namespace attnviz::nn;
using test::randn;

TEST_CASE("cross-entropy: known answer, smoothing, ignore index, gradient") {
  Mat logits(2, 3);
  logits << 0, 0, 0, 1, 2, 3;
  auto r = softmax_cross_entropy(logits, {1, -100});
  CHECK(r.count == 1);
  CHECK(r.loss == doctest::Approx(std::log(3.0)));
  CHECK(r.dlogits.row(1).isZero(0));
  CHECK(r.dlogits(0, 1) == doctest::Approx(1 / 3.0 - 1));
  auto s = softmax_cross_entropy(logits, {0, 2}, {.label_smoothing = 0.1f});
  CHECK(s.correct == 2);   // row 0: ties go to index 0; row 1: argmax 2
  const double lse1 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  const double l1 = -(0.9 + 0.1 / 3) * (3 - lse1) - 0.1 / 3 * ((1 - lse1) + (2 - lse1));
  CHECK(s.loss == doctest::Approx((std::log(3.0) + l1) / 2).epsilon(1e-6));
  CHECK_THROWS_AS(softmax_cross_entropy(logits, {3, 0}), std::out_of_range);

  Rng rng(1);
  Mat z = randn(4, 5, rng);
  std::vector<int> y = {1, 4, -1, 0};
  CrossEntropyOptions opt{.label_smoothing = 0.2f, .ignore_index = -1};
  auto g = softmax_cross_entropy(z, y, opt);
  auto res = check_gradient("ce", z, g.dlogits, [&] { return softmax_cross_entropy(z, y, opt).loss; });
  CHECK_MESSAGE(res.ok, res.message);
}

TEST_CASE("Adam matches a hand-computed first step; AdamW decays") {
  Param p(1, 2);
  p.value << 1.f, -2.f;
  ParamSet ps;
  ps.add(p, "w");
  Adam adam(ps, {.lr = 0.1f});
  p.grad << 0.5f, -3.f;
  adam.step();
  // Bias-corrected first step moves each weight by lr * sign(g).
  CHECK(p.value(0, 0) == doctest::Approx(0.9f).epsilon(1e-5));
  CHECK(p.value(0, 1) == doctest::Approx(-1.9f).epsilon(1e-5));
  CHECK(adam.steps() == 1);

  Param q(1, 1);
  q.value << 2.f;
  ParamSet qs;
  qs.add(q, "q");
  AdamW adamw(qs, {.lr = 0.1f, .weight_decay = 0.5f});
  q.grad.setZero();
  adamw.step();
  CHECK(q.value(0, 0) == doctest::Approx(2.f * (1 - 0.05f)));
}

TEST_CASE("clipping, schedule, initialisers") {
  Param a(1, 2), b(1, 1);
  ParamSet ps;
  ps.add(a, "a");
  ps.add(b, "b");
  CHECK_THROWS_AS(ps.add(a, "a"), std::logic_error);
  a.grad << 3.f, 0.f;
  b.grad << 4.f;
  CHECK(clip_grad_norm(ps, 1.0) == doctest::Approx(5.0));
  CHECK(ps.grad_norm() == doctest::Approx(1.0).epsilon(1e-4));
  CHECK(b.grad(0, 0) == doctest::Approx(0.8f).epsilon(1e-4));

  ScheduleOptions s{.base_lr = 1.f, .min_lr = 0.1f, .warmup_steps = 10, .total_steps = 110};
  CHECK(warmup_cosine(0, s) == doctest::Approx(0.1f));
  CHECK(warmup_cosine(9, s) == doctest::Approx(1.f));
  CHECK(warmup_cosine(60, s) == doctest::Approx(0.55f));
  CHECK(warmup_cosine(110, s) == doctest::Approx(0.1f));
  CHECK(warmup_cosine(500, s) == doctest::Approx(0.1f));

  Rng rng(2);
  Mat w(200, 100);
  xavier_uniform(w, rng);
  const float bound = std::sqrt(6.f / 300.f);
  CHECK(w.cwiseAbs().maxCoeff() <= bound);
  CHECK(w.cwiseAbs().maxCoeff() > 0.9f * bound);
  kaiming_normal(w, rng);
  const double var = w.array().square().mean();
  CHECK(var == doctest::Approx(2.0 / 200).epsilon(0.05));
  Rng r1(7), r2(7);
  CHECK(r1.next_u64() == r2.next_u64());
  CHECK(r1.fork(1).next_u64() != r1.fork(2).next_u64());
}

namespace {
// A miniature ViT: patches + CLS -> encoder block -> LayerNorm -> linear head on CLS.
struct TinyVit {
  PatchEmbedding embed{{.height = 4, .width = 4, .channels = 1, .patch = 2, .dim = 8}};
  EncoderBlock block{{.dim = 8, .heads = 2, .mlp_hidden = 16, .dropout = 0.1f}};
  LayerNorm ln{8};
  Linear head{8, 3};
  ParamSet ps;
  explicit TinyVit(uint64_t seed) {
    Rng rng(seed);
    embed.init(rng);
    block.init(rng);
    head.init(rng);
    embed.collect(ps, "vit.embed");
    block.collect(ps, "vit.layer0");
    ln.collect(ps, "vit.ln");
    head.collect(ps, "vit.head");
  }
  double train_step(const Mat& images, const std::vector<int>& labels, Adam& opt, Rng& drop) {
    const int B = static_cast<int>(images.rows()), T = embed.tokens();
    ps.zero_grad();
    Mat h = block.forward(embed.forward(images), B, T, {}, nullptr, &drop);
    Mat z = ln.forward(h);
    Mat cls(B, 8);
    for (int b = 0; b < B; ++b) cls.row(b) = z.row(b * T);
    auto ce = softmax_cross_entropy(head.forward(cls), labels);
    Mat dcls = head.backward(ce.dlogits);
    Mat dz = Mat::Zero(B * T, 8);
    for (int b = 0; b < B; ++b) dz.row(b * T) = dcls.row(b);
    embed.backward(block.backward(ln.backward(dz)));
    clip_grad_norm(ps, 1.0);
    opt.step();
    return ce.loss;
  }
};

Mat train(uint64_t seed, int thread_count, int steps, double* first, double* last) {
  set_threads(thread_count);
  TinyVit m(seed);
  AdamW opt(m.ps, {.lr = 3e-3f, .weight_decay = 0.01f});
  Rng data(42), drop(seed + 1);
  // Class = which quadrant is bright.
  Mat images = Mat::Zero(24, 16);
  std::vector<int> labels(24);
  for (int i = 0; i < 24; ++i) {
    labels[i] = i % 3;
    for (int p = 0; p < 16; ++p) images(i, p) = 0.1f * data.normal();
    const int r0 = (labels[i] % 2) * 2, c0 = (labels[i] / 2) * 2;
    for (int r = 0; r < 2; ++r)
      for (int c = 0; c < 2; ++c) images(i, (r0 + r) * 4 + c0 + c) += 1.f;
  }
  for (int s = 0; s < steps; ++s) {
    double l = m.train_step(images, labels, opt, drop);
    if (s == 0 && first) *first = l;
    if (last) *last = l;
  }
  set_threads(0);
  StFile f;
  m.ps.save_into(f);
  Mat all(1, static_cast<Eigen::Index>(m.ps.count()));
  Eigen::Index off = 0;
  for (auto& t : f.tensors)
    for (float v : t.data) all(0, off++) = v;
  return all;
}
}  // namespace

TEST_CASE("training learns, and the same seed + threads give bitwise-identical parameters") {
  double first = 0, last = 0;
  Mat a = train(5, 2, 40, &first, &last);
  CHECK(last < 0.5 * first);
  Mat b = train(5, 2, 40, nullptr, nullptr);
  CHECK((a.array() == b.array()).all());
  Mat c = train(6, 2, 40, nullptr, nullptr);
  CHECK(!(a.array() == c.array()).all());
}

TEST_CASE("parameters save to and load from safetensors by name, with shape checks") {
  TinyVit m(1), other(2);
  StFile f;
  m.ps.save_into(f);
  auto dir = test::temp_dir("engine_params");
  save_safetensors(dir / "m.safetensors", f);
  StFile back = load_safetensors(dir / "m.safetensors");
  other.ps.load_from(back, "m.safetensors");
  for (size_t i = 0; i < m.ps.params().size(); ++i)
    CHECK((m.ps.params()[i]->value.array() == other.ps.params()[i]->value.array()).all());
  // A missing or mis-shaped tensor is an InputError naming the file and the tensor.
  back.tensors.erase(back.tensors.begin());
  CHECK_THROWS_AS(other.ps.load_from(back, "m.safetensors"), InputError);
  StFile bad;
  m.ps.save_into(bad);
  bad.tensors[1].data.pop_back();
  bad.tensors[1].shape = {static_cast<int64_t>(bad.tensors[1].data.size())};
  try {
    other.ps.load_from(bad, "bad.safetensors");
    FAIL("expected InputError");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("bad.safetensors") != std::string::npos);
    CHECK(std::string(e.what()).find(bad.tensors[1].name) != std::string::npos);
  }
  // Optimizer state round-trips too (for --resume).
  Adam opt(m.ps);
  for (auto* p : m.ps.params()) p->grad.setConstant(0.1f);
  opt.step();
  StFile os;
  opt.save_into(os);
  Adam opt2(m.ps);
  opt2.load_from(os, "opt");
  CHECK(opt2.steps() == 1);
}

TEST_CASE("one thread policy: --threads wins; small-matrix work defaults to one thread") {
  CHECK(thread_count(3) == 3);
  CHECK(thread_count(3, Workload::SmallMatrices) == 3);
  CHECK(thread_count(0, Workload::SmallMatrices) == 1);
  CHECK(thread_count(0) == omp_get_max_threads());
  const int before = threads();
  use_threads(0, Workload::SmallMatrices);
  CHECK(threads() == 1);
  CHECK(omp_get_max_threads() == 1);
  use_threads(2);
  CHECK(threads() == 2);
  CHECK(omp_get_max_threads() == 2);
  use_threads(before);
}
