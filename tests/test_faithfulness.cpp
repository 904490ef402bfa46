// Tests of the saliency faithfulness numbers (`eval saliency`): the trapezoid AUC by hand, and the
// perturbation test's invariants on a tiny ViT (no masking keeps every prediction; masking every
// patch is the same image for positive and negative; deletion starts where insertion ends and the
// other way round; the random baseline is reproducible by seed), plus the CLI's usage errors.
#include <attnviz/error.hpp>
#include <attnviz/engine/rng.hpp>
#include <attnviz/models/faithfulness.hpp>

#include <doctest/doctest.h>

#include "test_util.hpp"

using namespace attnviz;
using namespace attnviz::models;
using namespace attnviz::test;

TEST_CASE("trapezoid AUC x100 by hand") {
  CHECK(trapezoid_auc({1, 1, 1}) == doctest::Approx(100));
  CHECK(trapezoid_auc({1, 0}) == doctest::Approx(50));
  // x = 0, .5, 1: (1 + .5) / 2 * .5 + (.5 + 0) / 2 * .5 = .5
  CHECK(trapezoid_auc({1, 0.5, 0}) == doctest::Approx(50));
  CHECK(trapezoid_auc({0, 1, 0}) == doctest::Approx(50));
  CHECK(trapezoid_auc({1}) == 0);
}

TEST_CASE("top patches: blank share and ink share by hand") {
  // A 4x4 image in 2x2 patches (0 1 / 2 3): ink 1 in patch 0, 3 in patch 3, patches 1 and 2 blank.
  std::vector<float> img(16, 0.f);
  img[0] = 1.f;                  // row 0, col 0: patch 0
  img[2 * 4 + 2] = 2.f, img[3 * 4 + 3] = 1.f;   // rows 2-3, cols 2-3: patch 3
  TopPatches t = top_patches(img.data(), 4, 2, 2, {3, 1, 0, 2}, 2);
  CHECK(t.blank == doctest::Approx(0.5));   // patch 3 has ink, patch 1 is blank
  CHECK(t.ink == doctest::Approx(0.75));    // 3 of the 4 units of ink
  t = top_patches(img.data(), 4, 2, 2, {1, 2, 0, 3}, 2);
  CHECK(t.blank == doctest::Approx(1.0));
  CHECK(t.ink == doctest::Approx(0.0));
  t = top_patches(img.data(), 4, 2, 2, {0, 3, 1, 2}, 4);
  CHECK(t.blank == doctest::Approx(0.5));
  CHECK(t.ink == doctest::Approx(1.0));
  std::vector<float> empty(16, 0.f);
  CHECK(top_patches(empty.data(), 4, 2, 2, {0, 1, 2, 3}, 1).ink == 0);
  CHECK(top_patches(img.data(), 4, 2, 2, {0, 1, 2, 3}, 0).blank == 0);
}

TEST_CASE("perturbation test invariants on a tiny ViT") {
  MnistConfig cfg;
  cfg.patch = 7, cfg.dim = 16, cfg.depth = 2, cfg.heads = 2, cfg.mlp = 32;
  auto model = make_mnist_model(cfg, 4);
  ImageSet set;
  set.count = 12, set.rows = set.cols = 28;
  nn::Rng rng(9);
  for (int i = 0; i < 12 * 28 * 28; ++i) set.pixels.push_back(rng.uniform() < 0.3f ? rng.uniform() : 0.f);
  for (int i = 0; i < 12; ++i) set.labels.push_back(i % 10);
  PerturbationOptions opt;
  opt.images = 12, opt.steps = 4;
  FaithfulnessResult r = perturbation_test(*model, set, opt);
  REQUIRE(r.fractions.size() == 5);
  CHECK(r.fractions[2] == doctest::Approx(0.5));
  CHECK(r.images == 12);
  REQUIRE(r.methods.size() == 6);
  CHECK(r.methods[5].method == "chefer");
  const double full_prob = r.methods[0].deletion.front(), blank_prob = r.methods[0].insertion.front();
  for (const auto& c : r.methods) {
    INFO(c.method);
    CHECK(c.positive.front() == doctest::Approx(1.0));   // nothing masked: every prediction stands
    CHECK(c.negative.front() == doctest::Approx(1.0));
    CHECK(c.positive.back() == doctest::Approx(c.negative.back()));   // everything masked
    CHECK(c.deletion.front() == doctest::Approx(full_prob));
    CHECK(c.insertion.back() == doctest::Approx(full_prob));          // everything revealed
    CHECK(c.insertion.front() == doctest::Approx(blank_prob));
    CHECK(c.deletion.back() == doctest::Approx(blank_prob));
    CHECK(c.auc_positive == doctest::Approx(trapezoid_auc(c.positive)));
    for (double y : c.positive) CHECK((y >= 0 && y <= 1));
    CHECK((c.top_blank >= 0 && c.top_blank <= 1));
    CHECK((c.top_ink >= 0 && c.top_ink <= 1));
  }
  // The random baseline is reproducible by seed.
  opt.methods = {"random"};
  auto a = perturbation_test(*model, set, opt), b = perturbation_test(*model, set, opt);
  CHECK(a.methods[0].deletion == b.methods[0].deletion);
  opt.methods = {"magic"};
  CHECK_THROWS_AS(perturbation_test(*model, set, opt), UsageError);
}

TEST_CASE("CLI: eval saliency usage errors") {
  CHECK(run_cli("eval saliency --model nothing.safetensors --methods magic").code == 1);
  CHECK(run_cli("eval saliency").code == 1);
  auto r = run_cli("eval saliency --model /nonexistent/m.safetensors");
  CHECK(r.code == 2);
}
