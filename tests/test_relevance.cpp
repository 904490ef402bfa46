// Tests of the LRP relevance (Chefer et al. 2021 rules, engine/relevance.hpp) and the transformer
// attribution built on it (saliency method "chefer"): a 2x2(x3) linear layer and one tiny attention
// worked by hand, conservation on a tiny ViT, and a known-answer check of the whole map on a tiny
// ViT against scripts/make_chefer_reference.py (float64 PyTorch, the rules in autograd form).
#include <attnviz/analysis/saliency.hpp>
#include <attnviz/engine/relevance.hpp>
#include <attnviz/engine/rng.hpp>
#include <attnviz/error.hpp>
#include <attnviz/models/mnist.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "test_chefer_reference.hpp"
#include "test_util.hpp"

using namespace attnviz;
using namespace attnviz::models;
using namespace attnviz::test;

TEST_CASE("LRP alpha=1 beta=0 of a linear layer by hand") {
  // x = [1, -2]; W (in 2 x out 3) = [[2, -1, -1], [-3, -4, 1]].
  // Contributions x_i w_ij: column 0: 2, 6 (both count: x+ w+ and x- w-) -> Z_0 = 8;
  // column 1: -1 (x+ w-: dropped), 8 (x- w-) -> Z_1 = 8; column 2: -1, -2 -> none count, Z_2 = 0.
  // R_out = [1, 2, 5]: R_in = [2/8 * 1, 6/8 * 1 + 8/8 * 2] = [0.25, 2.75]; column 2's 5 is lost.
  Mat x(1, 2), W(2, 3), R(1, 3);
  x << 1, -2;
  W << 2, -1, -1, -3, -4, 1;
  R << 1, 2, 5;
  Mat r = nn::lrp_linear(x, W, R);
  REQUIRE(r.rows() == 1);
  REQUIRE(r.cols() == 2);
  CHECK(r(0, 0) == doctest::Approx(0.25));
  CHECK(r(0, 1) == doctest::Approx(2.75));
  // Linear in R; two rows are independent.
  Mat x2(2, 2), R2(2, 3);
  x2 << 1, -2, 1, -2;
  R2 << 1, 2, 5, 2, 4, 10;
  Mat r2 = nn::lrp_linear(x2, W, R2);
  CHECK(r2(1, 0) == doctest::Approx(0.5));
  CHECK(r2(1, 1) == doctest::Approx(5.5));
  CHECK_THROWS_AS(nn::lrp_linear(x, W.transpose(), R), std::invalid_argument);
}

TEST_CASE("LRP of a residual add: proportional split, normalised to conserve (eq. 6-9)") {
  // a = [1, 3], b = [1, -1], R = [1, 1]: raw R_a = a R / (a + b) = [0.5, 1.5] (sum 2),
  // R_b = [0.5, -0.5] (sum 0): shares |2| / (|2| + |0|) = 1 and 0 of sum R = 2.
  Mat a(1, 2), b(1, 2), R(1, 2), ra, rb;
  a << 1, 3;
  b << 1, -1;
  R << 1, 1;
  nn::lrp_add(a, b, R, ra, rb);
  CHECK(ra(0, 0) == doctest::Approx(0.5));
  CHECK(ra(0, 1) == doctest::Approx(1.5));
  CHECK(rb(0, 0) == doctest::Approx(0));
  CHECK(rb(0, 1) == doctest::Approx(0));
  // a = [2, 1], b = [2, 3], R = [1, 2]: raw R_a = [0.5, 0.5] (1), R_b = [0.5, 1.5] (2): shares 1/3, 2/3
  // of 3, i.e. the raw values again (they already conserve).
  a << 2, 1;
  b << 2, 3;
  R << 1, 2;
  nn::lrp_add(a, b, R, ra, rb);
  CHECK(ra(0, 1) == doctest::Approx(0.5));
  CHECK(rb(0, 1) == doctest::Approx(1.5));
  CHECK(ra.sum() + rb.sum() == doctest::Approx(3));
}

TEST_CASE("LRP of one tiny attention by hand") {
  // One head, D = Dh = 2, W_Q = W_K = W_V = W_O = I, no biases, x = [[1, .5], [.5, 1]]: q = k = v = x.
  nn::MultiHeadAttention mha(nn::MultiHeadAttentionOptions{.dim = 2, .heads = 1});
  for (nn::Linear* l : {&mha.wq, &mha.wk, &mha.wv, &mha.wo}) l->weight.value = Mat::Identity(2, 2);
  Mat x(2, 2);
  x << 1, 0.5, 0.5, 1;
  nn::AttentionWeights w;
  Mat y = mha.forward(x, 1, 2, {}, &w);
  // Scores x x^T / sqrt 2 = [[1.25, 1], [1, 1.25]] / sqrt 2: row 0 softmax a = sigmoid(0.25 / sqrt 2).
  const double a = 1 / (1 + std::exp(-0.25 / std::sqrt(2.0)));
  CHECK(w.data[0] == doctest::Approx(a));
  // Output row 0 = ctx row 0 = a v_0 + (1 - a) v_1 = [a + .5(1 - a), .5a + (1 - a)].
  const double c0 = a + 0.5 * (1 - a), c1 = 0.5 * a + (1 - a);
  CHECK(y(0, 0) == doctest::Approx(c0));
  // Relevance only on output row 0: [0.6, 0.4]. W_O = I on positive ctx passes it unchanged.
  Mat R = Mat::Zero(2, 2);
  R << 0.6, 0.4, 0, 0;
  nn::AttentionRelevance ar = nn::lrp_attention(mha, w, R);
  // C = A V: S = R / C = [0.6 / c0, 0.4 / c1] on row 0.
  const double s0 = 0.6 / c0, s1 = 0.4 / c1;
  // R_A[0, j] = A[0, j] (S v_j) / 2:  j = 0: a (s0 + .5 s1) / 2;  j = 1: (1 - a)(.5 s0 + s1) / 2.
  const double ra0 = a * (s0 + 0.5 * s1) / 2, ra1 = (1 - a) * (0.5 * s0 + s1) / 2;
  CHECK(ra0 == doctest::Approx(0.2862).epsilon(1e-3));   // the numbers, worked once by hand
  CHECK(ra1 == doctest::Approx(0.2138).epsilon(1e-3));
  CHECK(ar.attention.data[0] == doctest::Approx(ra0));
  CHECK(ar.attention.data[1] == doctest::Approx(ra1));
  CHECK(ar.attention.data[2] == doctest::Approx(0));   // row 1 had no relevance
  CHECK(ar.attention.data[3] == doctest::Approx(0));
  // R_V[j, d] = v_jd A[0, j] S_d / 2; S = Q K^T (unscaled, the scale cancels) = [[1.25, 1], ...]:
  // S' = R_A / S = [ra0 / 1.25, ra1 / 1] on row 0; R_Q[0, d] = q_0d (S' K)_d / 2,
  // R_K[j, d] = k_jd S'_j q_0d / 2. W = I passes them on: R_x = R_Q + R_K + R_V.
  const double t0 = ra0 / 1.25, t1 = ra1;
  const double rv[2][2] = {{1 * a * s0 / 2, 0.5 * a * s1 / 2}, {0.5 * (1 - a) * s0 / 2, 1 * (1 - a) * s1 / 2}};
  const double rq[2] = {1 * (t0 * 1 + t1 * 0.5) / 2, 0.5 * (t0 * 0.5 + t1 * 1) / 2};
  const double rk[2][2] = {{1 * t0 * 1 / 2, 0.5 * t0 * 0.5 / 2}, {0.5 * t1 * 1 / 2, 1 * t1 * 0.5 / 2}};
  Mat rx = ar.query_input + ar.kv_input;
  CHECK(rx(0, 0) == doctest::Approx(rq[0] + rk[0][0] + rv[0][0]));
  CHECK(rx(0, 1) == doctest::Approx(rq[1] + rk[0][1] + rv[0][1]));
  CHECK(rx(1, 0) == doctest::Approx(rk[1][0] + rv[1][0]));
  CHECK(rx(1, 1) == doctest::Approx(rk[1][1] + rv[1][1]));
  // Conservation: R_V holds half, R_Q and R_K a quarter each: all of sum R = 1.
  CHECK(rx.sum() == doctest::Approx(1));
  CHECK(ar.query_input.sum() == doctest::Approx(0.25));
}

namespace {
// A small ViT with every parameter (biases and LayerNorm included) moved off its initial value.
std::unique_ptr<MnistModel> shaken_vit(const MnistConfig& cfg, std::uint64_t seed) {
  auto m = make_mnist_model(cfg, seed);
  nn::Rng rng(seed + 1);
  for (nn::Param* p : m->params().params())
    for (Eigen::Index i = 0; i < p->value.size(); ++i) p->value.data()[i] += 0.2f * (rng.uniform() - 0.5f);
  return m;
}
}  // namespace

TEST_CASE("relevance is conserved through the whole ViT") {
  // With D = 32 every output of every Linear has some positive contribution (all 32 negative has
  // probability 2^-32), so no relevance is dropped: the token embeddings receive exactly the
  // relevance put on the logits, per sample.
  MnistConfig cfg;
  cfg.image = 8, cfg.patch = 2, cfg.dim = 32, cfg.depth = 3, cfg.heads = 4, cfg.mlp = 64, cfg.classes = 4;
  auto m = shaken_vit(cfg, 5);
  nn::Rng rng(3);
  Mat images(3, 64);
  for (Eigen::Index i = 0; i < images.size(); ++i) images.data()[i] = rng.uniform() < 0.5f ? rng.uniform() : 0.f;
  AttentionCollector sink;
  m->forward(images, &sink);
  Mat R = Mat::Zero(3, 4);
  R(0, 1) = 1, R(1, 3) = 1, R(2, 0) = 2.5;
  Mat rin = m->relevance(R);
  REQUIRE(rin.rows() == 3 * 17);
  for (int b = 0; b < 3; ++b) CHECK(rin.middleRows(b * 17, 17).sum() == doctest::Approx(R.row(b).sum()).epsilon(1e-4));
  // One attention relevance per layer, [H, T, T], finite and not all zero.
  auto rel = m->attention_relevance(1);
  REQUIRE(rel.size() == 3);
  CHECK(rel[2].heads == 4);
  CHECK(rel[2].queries == 17);
  double mass = 0;
  for (float v : rel[2].data) mass += std::abs(v);
  CHECK(mass > 0);
  // Linear in the relevance put on the logits.
  Mat rin2 = m->relevance(2 * R);
  CHECK((rin2 - 2 * rin).cwiseAbs().maxCoeff() < 1e-4f * rin.cwiseAbs().maxCoeff());
  // A forward without a sink keeps nothing to propagate through.
  m->forward(images);
  CHECK_THROWS_AS(m->relevance(R), std::logic_error);
  // The pooling baseline has none.
  MnistConfig pc = cfg;
  pc.arch = "pool";
  auto pool = make_mnist_model(pc, 1);
  pool->forward(images, &sink);
  CHECK(pool->relevance(R).size() == 0);
}

namespace {
nlohmann::json reference() {
  return nlohmann::json::parse(slurp(source_dir() / "tests" / "data" / "chefer" / "reference.json"));
}
}  // namespace

TEST_CASE("the Chefer map of a tiny ViT matches the float64 PyTorch reference") {
  const auto ref = reference();
  auto model = load_mnist_model(source_dir() / "tests" / "data" / "chefer" / "tiny_vit.safetensors");
  REQUIRE(model->config().tokens() == 17);
  ImageSet set;
  set.count = static_cast<int>(ref["images"].size());
  set.rows = set.cols = 8;
  for (const auto& img : ref["images"])
    for (double v : img) set.pixels.push_back(static_cast<float>(v));
  set.labels.assign(set.count, 0);
  REQUIRE(ref["cases"].size() == 4);
  for (const auto& c : ref["cases"]) {
    const int image = c["image"], target = c["target"];
    INFO("image " << image << ", target " << target);
    auto recs = record_mnist(*model, set, {image}, "tiny", {}, target);
    const AttentionRecord& r = recs[0];
    r.validate("r");
    CHECK(r.metadata.at("prediction") == std::to_string(c["predicted"].get<int>()));
    CHECK(r.metadata.at("explained") == std::to_string(target));
    check_chefer_reference_case(r, c);
    // The relevance reaching the embeddings: below 1 where some Linear output of this D = 8 model
    // has only negative contributions (the rule drops those), the same in both implementations.
    AttentionCollector sink;
    Mat logits = model->forward(image_batch(set, {image}), &sink);
    for (int j = 0; j < 4; ++j) CHECK(logits(0, j) == doctest::Approx(c["logits"][j].get<double>()).epsilon(1e-4));
    Mat R = Mat::Zero(1, 4);
    R(0, target) = 1;
    CHECK(model->relevance(R).sum() == doctest::Approx(c["input_relevance_sum"].get<double>()).epsilon(1e-4));
  }
}

TEST_CASE("saliency method chefer: parsing, the rollout, and records without relevance") {
  CHECK(parse_saliency_method("chefer") == SaliencyMethod::Chefer);
  CHECK(to_string(SaliencyMethod::Chefer) == "chefer");
  // chefer_rollout = (I + A_bar_2)(I + A_bar_1), A_bar = mean_h (grad * R)^+, rows not renormalised.
  AttentionTensor r1("l.layer0.self", 1, 2, 2), r2("l.layer1.self", 1, 2, 2), g1 = r1, g2 = r2;
  r1.data = {0.5f, -1.f, 0.2f, 0.f};
  g1.data = {1.f, 1.f, 2.f, 3.f};     // A_bar_1 = [[0.5, 0], [0.4, 0]]
  r2.data = {1.f, 1.f, 0.f, 1.f};
  g2.data = {0.f, 0.5f, 1.f, -1.f};   // A_bar_2 = [[0, 0.5], [0, 0]]
  Mat c = chefer_rollout({&r1, &r2}, {&g1, &g2});
  // (I + A2)(I + A1) = [[1, .5], [0, 1]] [[1.5, 0], [.4, 1]] = [[1.7, .5], [.4, 1]]
  CHECK(c(0, 0) == doctest::Approx(1.7));
  CHECK(c(0, 1) == doctest::Approx(0.5));
  CHECK(c(1, 0) == doctest::Approx(0.4));
  CHECK(c(1, 1) == doctest::Approx(1));
  // A record with gradients but no relevance: one line naming the file and what is missing.
  AttentionRecord rec;
  rec.tensors = {r1, r2};
  rec.gradients = {g1, g2};
  SaliencyOptions so;
  so.method = SaliencyMethod::Chefer;
  CHECK_THROWS_WITH_AS(token_saliency(rec, so, "x.safetensors"), doctest::Contains("no relevance for 'l.layer0.self'"),
                       InputError);
  rec.relevance = {r1, r2};
  CHECK(token_saliency(rec, so, "x.safetensors")[1] == doctest::Approx(0.5));
}

TEST_CASE("CLI: record keeps the relevance; render overlay --method chefer draws it") {
  fs::path dir = temp_dir("cli");
  auto model = load_mnist_model(source_dir() / "tests" / "data" / "chefer" / "tiny_vit.safetensors");
  const auto ref = reference();
  ImageSet set;
  set.count = 2, set.rows = set.cols = 8;
  for (const auto& img : ref["images"])
    for (double v : img) set.pixels.push_back(static_cast<float>(v));
  set.labels = {1, 2};
  save_records(dir / "r.safetensors", record_mnist(*model, set, {0, 1}, "tiny"));
  auto back = load_records(dir / "r.safetensors");
  REQUIRE(back.size() == 2);
  REQUIRE(back[1].relevance.size() == 2);
  back[1].validate("r");
  auto orig = record_mnist(*model, set, {1}, "tiny");
  // Written and read back as recorded (a batch of one gives the same to rounding).
  REQUIRE(orig[0].relevance[1].data.size() == back[1].relevance[1].data.size());
  for (size_t i = 0; i < orig[0].relevance[1].data.size(); ++i)
    CHECK(back[1].relevance[1].data[i] == doctest::Approx(orig[0].relevance[1].data[i]).epsilon(1e-4).scale(1e-3));
  auto ins = run_cli("inspect '" + (dir / "r.safetensors").string() + "'");
  CHECK(ins.out.find("(+relevance)") != std::string::npos);
  auto r = run_cli("render overlay '" + (dir / "r.safetensors").string() + "' --method chefer --all -o '" +
                   (dir / "o.png").string() + "'");
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(slurp(dir / "o.png").substr(1, 3) == "PNG");
  // A record without relevance: exit 2 with one line naming the file.
  AttentionRecord plain = back[0];
  plain.relevance.clear();
  save_record(dir / "plain.safetensors", plain);
  auto bad = run_cli("render overlay '" + (dir / "plain.safetensors").string() + "' --method chefer -o '" +
                     (dir / "p.png").string() + "'");
  CHECK(bad.code == 2);
  CHECK(bad.out.find("plain.safetensors") != std::string::npos);
  CHECK(bad.out.find("relevance") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "p.png"));
}
