// Decoder-LM relevance (models/lm_relevance.hpp): the attention-map gradients of the recomputed
// forward against central finite differences in float64 on tiny random llamas (grouped-query
// attention, RoPE in both pairings, Qwen-style q/k/v biases) and a tiny gpt2; the recomputed forward
// against the KV-cache forward; grad-rollout against its definition; the generation record; the CLI
// on a tiny gpt2 fixture and (suite "models") on stories260K. The LRP half of Chefer et al. (CVPR
// 2021): the new rules by hand (lrp_rotation, lrp_product), conservation on the three tiny models,
// the rollout against its definition, R^(A) and the rollout against scripts/make_lm_lrp_reference.py
// (float64 PyTorch) on the two tiny Hugging Face llamas.
#include "test_util.hpp"

#include <attnviz/engine/relevance.hpp>
#include <attnviz/engine/rng.hpp>
#include <attnviz/error.hpp>
#include <attnviz/models/lm.hpp>
#include <attnviz/models/lm_relevance.hpp>
#include <attnviz/record/record.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>

using namespace attnviz;
using namespace attnviz::models;
namespace fs = std::filesystem;
using test::run_cli;

namespace {

struct KeepSink : AttentionSink {
  std::map<std::string, nn::AttentionWeights> w;
  void weights(const std::string& name, nn::AttentionWeights&& x, int) override { w[name] = x; }
};

struct Variant {
  const char* name;
  LmArch arch;
  nn::RopeStyle rope;
  bool qkv_bias;
};

// A tiny random LM whose norms, biases and attention are all far from trivial.
std::unique_ptr<LmModel> tiny(const Variant& v) {
  LmConfig c;
  c.arch = v.arch, c.name = "tiny", c.layers = 2, c.dim = 16, c.ffn = 24, c.vocab = 30, c.context = 32;
  c.heads = 4, c.kv_heads = v.arch == LmArch::Llama ? 2 : 4, c.head_dim = 4;
  c.rope_style = v.rope;
  c.qkv_bias = v.qkv_bias;
  c.rope_base = 100.0;   // the rotation angles vary visibly over 6 positions
  auto m = std::make_unique<LmModel>(c);
  m->init_random(7, 0.4f);
  nn::Rng rng(99);
  for (nn::Param* p : m->params().params()) {
    const bool bias = p->name.size() > 5 && p->name.compare(p->name.size() - 5, 5, ".bias") == 0;
    const bool norm = p->name.find("_norm.") != std::string::npos;
    if (bias || norm)
      for (Eigen::Index i = 0; i < p->value.size(); ++i) p->value.data()[i] += rng.normal(0.f, 0.2f);
  }
  return m;
}

const Variant kVariants[] = {
    {"llama GQA adjacent", LmArch::Llama, nn::RopeStyle::Adjacent, false},
    {"llama GQA halves + qkv bias", LmArch::Llama, nn::RopeStyle::Halves, true},
    {"gpt2", LmArch::Gpt2, nn::RopeStyle::Adjacent, false},
};

}  // namespace

TEST_CASE("LM relevance: the recomputed forward equals the KV-cache forward (logits of every position)") {
  for (const Variant& v : kVariants) {
    const std::string variant = v.name;
    CAPTURE(variant);
    const auto mp = tiny(v);
    const LmModel& m = *mp;
    const std::vector<int> ids = {1, 5, 7, 2, 9, 3};
    LmCache cache = m.new_cache(6);
    LmForwardOptions fo;
    fo.all_logits = true;
    const Mat logits = m.forward(ids, cache, nullptr, fo);
    for (const bool f64 : {true, false})
      for (int t = 0; t < 6; ++t)
        for (int tok : {0, 4, 29}) {
          LmRelevanceOptions o;
          o.float64 = f64;
          CHECK(lm_target_logit(m, ids, {t, tok}, o) == doctest::Approx(logits(t, tok)).epsilon(1e-4).scale(1.0));
        }
  }
}

TEST_CASE("LM relevance: attention-map gradients against central finite differences (float64)") {
  // The explained logit is a smooth function of each attention weight A[l][h](i, j) (added after the
  // softmax); a central difference with step 1e-5 has truncation error ~1e-10 * |d3 logit| and
  // rounding error ~1e-16 / 1e-5 = 1e-11, so 1e-7 absolute + 1e-6 relative leaves a wide margin while
  // a wrong rule (a missed RoPE, GQA group, norm term, softmax term) is off by >= 1e-2.
  for (const Variant& v : kVariants) {
    const std::string variant = v.name;
    CAPTURE(variant);
    const auto mp = tiny(v);
    const LmModel& m = *mp;
    const LmConfig& c = m.config();
    const std::vector<int> ids = {1, 5, 7, 2, 9, 3};
    const LmExplainTarget tg{4, 11};
    LmRelevanceOptions o;
    o.float64 = true;
    o.keep_gradients = true;
    const LmExplanation e = lm_explain(m, ids, {tg}, o)[0];
    const int n = 5;
    REQUIRE(e.gradients.size() == static_cast<size_t>(c.layers));
    double largest = 0;
    int checked = 0;
    for (int l = 0; l < c.layers; ++l)
      for (int h = 0; h < c.heads; ++h)
        for (int i = 0; i < n; ++i)
          for (int j = 0; j < n; ++j) {
            const double g = e.gradients[l][(static_cast<size_t>(h) * n + i) * n + j];
            if (j > i) {
              CHECK(g == 0.0);
              continue;
            }
            CAPTURE(l);
            CAPTURE(h);
            CAPTURE(i);
            CAPTURE(j);
            const double d = 1e-5;
            LmAttentionPerturbation p{l, h, i, j, d};
            LmRelevanceOptions po;
            po.float64 = true;
            po.perturb = &p;
            const double up = lm_target_logit(m, ids, tg, po);
            p.delta = -d;
            const double down = lm_target_logit(m, ids, tg, po);
            const double fd = (up - down) / (2 * d);
            CHECK(std::abs(g - fd) <= 1e-7 + 1e-6 * std::abs(fd));
            largest = std::max(largest, std::abs(fd));
            ++checked;
          }
    CHECK(checked == c.layers * c.heads * n * (n + 1) / 2);
    CHECK(largest > 0.05);   // the test sees real gradients, not zeros
    // Causality: a weight of a later query changes nothing at position 4.
    LmAttentionPerturbation late{0, 1, 5, 2, 0.5};
    LmRelevanceOptions po;
    po.float64 = true;
    po.perturb = &late;
    CHECK(lm_target_logit(m, ids, tg, po) == lm_target_logit(m, ids, tg, {true}));

    // float32 (what generate uses) against float64: the same gradients to 1e-4 of the largest
    // (float32 rounding ~6e-8 per operation, a few hundred operations deep on O(1) values).
    LmRelevanceOptions f32;
    f32.keep_gradients = true;
    const LmExplanation e32 = lm_explain(m, ids, {tg}, f32)[0];
    double worst = 0, top = 0;
    for (int l = 0; l < c.layers; ++l)
      for (size_t k = 0; k < e.gradients[l].size(); ++k) {
        worst = std::max(worst, std::abs(e.gradients[l][k] - e32.gradients[l][k]));
        top = std::max(top, std::abs(e.gradients[l][k]));
      }
    CHECK(worst <= 1e-4 * top);
  }
}

TEST_CASE("LM relevance: grad-rollout from the gradients and the model's own weights; first row one-hot") {
  for (const Variant& v : kVariants) {
    const std::string variant = v.name;
    CAPTURE(variant);
    const auto mp = tiny(v);
    const LmModel& m = *mp;
    const LmConfig& c = m.config();
    const std::vector<int> ids = {1, 5, 7, 2, 9, 3};
    LmCache cache = m.new_cache(6);
    KeepSink sink;
    m.forward(ids, cache, &sink);
    LmRelevanceOptions o;
    o.float64 = true;
    o.keep_gradients = true;
    const std::vector<LmExplanation> ex = lm_explain(m, ids, {{0, 3}, {3, 8}, {5, 2}}, o);
    for (const LmExplanation& e : ex) {
      const int t = e.target.position, n = t + 1, T = 6;
      CAPTURE(t);
      // R = (I + Ā_L) ... (I + Ā_1), Ā_l = mean_h (∇A ⊙ A)^+; row t, written out as a matrix product.
      Eigen::MatrixXd R = Eigen::MatrixXd::Identity(n, n);
      for (int l = 0; l < c.layers; ++l) {
        const nn::AttentionWeights& w = sink.w.at("decoder.layer" + std::to_string(l) + ".self");
        Eigen::MatrixXd Ab = Eigen::MatrixXd::Zero(n, n);
        for (int h = 0; h < c.heads; ++h)
          for (int i = 0; i < n; ++i)
            for (int j = 0; j < n; ++j)
              Ab(i, j) += std::max(0.0, e.gradients[l][(static_cast<size_t>(h) * n + i) * n + j] *
                                            w.at(0, h)[static_cast<size_t>(i) * T + j]) / c.heads;
        R = (Eigen::MatrixXd::Identity(n, n) + Ab) * R;
      }
      REQUIRE(e.relevance.size() == static_cast<size_t>(n));
      for (int j = 0; j < n; ++j) CHECK(e.relevance[j] == doctest::Approx(R(t, j)).epsilon(1e-5));
      CHECK(e.relevance[t] >= 1.0);
    }
    CHECK(ex[0].relevance.size() == 1);   // the first token sees only itself
  }
}

TEST_CASE("LRP rules of the decoder LMs by hand: a 2x2 RoPE rotation, the SwiGLU product") {
  // w^2 rule on the rotation by c = 0.6, s = 0.8 (W = [[c, s], [-s, c]]): each output's relevance
  // goes to a and b in proportion to (c^2, s^2) = (0.36, 0.64) for y0 and (0.64, 0.36) for y1.
  double ra, rb;
  nn::lrp_rotation<double>(0.6, 0.8, 1.0, 2.0, ra, rb);
  CHECK(ra == doctest::Approx(0.36 * 1.0 + 0.64 * 2.0));
  CHECK(rb == doctest::Approx(0.64 * 1.0 + 0.36 * 2.0));
  // Angle 0 passes relevance through; a quarter turn (y0 = -b, y1 = a) swaps it.
  nn::lrp_rotation<double>(1.0, 0.0, 3.0, -0.5, ra, rb);
  CHECK(ra == 3.0);
  CHECK(rb == -0.5);
  nn::lrp_rotation<double>(0.0, 1.0, 3.0, -0.5, ra, rb);
  CHECK(ra == -0.5);
  CHECK(rb == 3.0);
  // Conserving at any angle, signed relevance included.
  nn::Rng rng(5);
  for (int trial = 0; trial < 50; ++trial) {
    const double th = rng.normal(0.f, 2.f), r0 = rng.normal(0.f, 1.f), r1 = rng.normal(0.f, 1.f);
    nn::lrp_rotation<double>(std::cos(th), std::sin(th), r0, r1, ra, rb);
    CHECK(ra + rb == doctest::Approx(r0 + r1).epsilon(1e-12));
  }
  // silu(g) * u = C: each operand half of R where C != 0, nothing where C = 0.
  nn::MatOf<double> X(1, 3), Y(1, 3), R(1, 3), RX, RY;
  X << 2, 0, -1;
  Y << 3, 5, 4;
  R << 1, 0.5, -2;
  nn::lrp_product<double>(X, Y, R, RX, RY);
  CHECK(RX(0, 0) == 0.5);
  CHECK(RX(0, 1) == 0.0);
  CHECK(RX(0, 2) == -1.0);
  CHECK(RY == RX);
  CHECK_THROWS_AS(nn::lrp_product<double>(X, Y, nn::MatOf<double>(2, 3), RX, RY), std::invalid_argument);
}

TEST_CASE("LM LRP relevance: conservation on the tiny llamas and gpt2; the rollout from its maps; float32") {
  // Every rule passes on exactly the relevance it receives except a Linear output with no positive
  // contribution (reported as absorbed): sum(input) + absorbed = 1 (the seed). A rule that
  // double-counts (a product not halved, a GQA group counted once per query head) breaks it.
  for (const Variant& v : kVariants) {
    const std::string variant = v.name;
    CAPTURE(variant);
    const auto mp = tiny(v);
    const LmModel& m = *mp;
    const LmConfig& c = m.config();
    const std::vector<int> ids = {1, 5, 7, 2, 9, 3};
    LmRelevanceOptions o;
    o.float64 = true;
    o.keep_gradients = true;
    const std::vector<LmExplanation> ex = lm_explain(m, ids, {{0, 3}, {3, 8}, {5, 2}}, o);
    LmRelevanceOptions o32;
    o32.keep_gradients = true;
    const std::vector<LmExplanation> ex32 = lm_explain(m, ids, {{0, 3}, {3, 8}, {5, 2}}, o32);
    for (size_t k = 0; k < ex.size(); ++k) {
      const LmExplanation& e = ex[k];
      const int t = e.target.position, n = t + 1;
      CAPTURE(t);
      REQUIRE(e.lrp_input.size() == static_cast<size_t>(n));
      double in = 0;
      for (double x : e.lrp_input) in += x;
      CHECK(in + e.lrp_absorbed == doctest::Approx(1.0).epsilon(1e-4));
      CHECK(std::abs(e.lrp_absorbed) < 0.05);   // at D = 16 an all-negative Linear column is rare
      double in32 = 0;
      for (double x : ex32[k].lrp_input) in32 += x;
      CHECK(in32 + ex32[k].lrp_absorbed == doctest::Approx(1.0).epsilon(1e-4));
      // The Chefer rollout from the kept gradients and maps: R = (I + Ā_L) ... (I + Ā_1),
      // Ā_l = mean_h (∇A ⊙ R^(A))^+; R^(A) is causal and, per layer, sums to the relevance of that
      // layer's attention output's share of the seed (not checked: it depends on the adds).
      Eigen::MatrixXd R = Eigen::MatrixXd::Identity(n, n);
      for (int l = 0; l < c.layers; ++l) {
        Eigen::MatrixXd Ab = Eigen::MatrixXd::Zero(n, n);
        for (int h = 0; h < c.heads; ++h)
          for (int i = 0; i < n; ++i)
            for (int j = 0; j < n; ++j) {
              const size_t at = (static_cast<size_t>(h) * n + i) * n + j;
              if (j > i) CHECK(e.lrp_maps[l][at] == 0.0);
              Ab(i, j) += std::max(0.0, e.gradients[l][at] * e.lrp_maps[l][at]) / c.heads;
            }
        R = (Eigen::MatrixXd::Identity(n, n) + Ab) * R;
      }
      REQUIRE(e.lrp_relevance.size() == static_cast<size_t>(n));
      double top = 0;
      for (int j = 0; j < n; ++j) {
        CHECK(e.lrp_relevance[j] == doctest::Approx(R(t, j)).epsilon(1e-9));
        top = std::max(top, std::abs(e.lrp_relevance[j]));
      }
      CHECK(e.lrp_relevance[t] >= 1.0);
      // float32 (what generate uses): the rollout within 1e-4 of the largest entry.
      for (int j = 0; j < n; ++j) CHECK(std::abs(ex32[k].lrp_relevance[j] - e.lrp_relevance[j]) <= 1e-4 * top);
    }
    // lrp = false: no LRP work, the grad-rollout unchanged.
    LmRelevanceOptions off;
    off.float64 = true;
    off.lrp = false;
    const LmExplanation e0 = lm_explain(m, ids, {{5, 2}}, off)[0];
    CHECK(e0.lrp_relevance.empty());
    CHECK(e0.relevance == ex[2].relevance);
  }
}

TEST_CASE("LM LRP relevance against the PyTorch reference (scripts/make_lm_lrp_reference.py)") {
  // Two tiny Hugging Face llamas (GQA 4/2, rotate-half RoPE; the second with q/k/v biases, tied
  // output, RoPE scaling, BF16 weights), two targets each: every R^(A) map and the rollout row, in
  // float64 and float32, to 1e-4 of the largest value of its kind.
  std::ifstream f(test::source_dir() / "tests" / "data" / "lm_lrp" / "reference.json");
  REQUIRE(f);
  const nlohmann::json ref = nlohmann::json::parse(f);
  REQUIRE(ref["cases"].size() == 4);
  for (const nlohmann::json& cs : ref["cases"]) {
    const std::string fixture = cs["fixture"];
    CAPTURE(fixture);
    const LoadedLm lm = load_lm(test::source_dir() / "tests" / "data" / "hf" / fixture);
    const LmConfig& c = lm.model->config();
    const std::vector<int> ids = cs["ids"];
    const LmExplainTarget tg{cs["position"].get<int>(), cs["token"].get<int>()};
    CAPTURE(tg.position);
    const int n = tg.position + 1;
    for (const bool f64 : {true, false}) {
      CAPTURE(f64);
      LmRelevanceOptions o;
      o.float64 = f64;
      o.keep_gradients = true;
      const LmExplanation e = lm_explain(*lm.model, ids, {tg}, o)[0];
      CHECK(e.logit == doctest::Approx(cs["logit"].get<double>()).epsilon(1e-5));
      double top = 0, worst = 0;
      for (int l = 0; l < c.layers; ++l)
        for (int h = 0; h < c.heads; ++h)
          for (int i = 0; i < n; ++i)
            for (int j = 0; j < n; ++j) {
              const double want = cs["lrp_maps"][l][h][i][j];
              top = std::max(top, std::abs(want));
              worst = std::max(worst, std::abs(e.lrp_maps[l][(static_cast<size_t>(h) * n + i) * n + j] - want));
            }
      INFO("R^(A): largest " << top << ", worst difference " << worst);
      CHECK(top > 1e-3);
      CHECK(worst <= 1e-4 * top);
      double rtop = 0, rworst = 0;
      for (int j = 0; j < n; ++j) {
        const double want = cs["lrp_relevance"][j];
        rtop = std::max(rtop, std::abs(want));
        rworst = std::max(rworst, std::abs(e.lrp_relevance[j] - want));
      }
      INFO("rollout: worst difference " << rworst);
      CHECK(rworst <= 1e-4 * rtop);
      double in = 0;
      for (double x : e.lrp_input) in += x;
      CHECK(in == doctest::Approx(cs["input_relevance_sum"].get<double>()).epsilon(1e-4));
    }
  }
}

TEST_CASE("LM relevance: generation record decoder.relevance; --explain-step; usage errors") {
  const auto mp = tiny(kVariants[0]);
  const LmModel& m = *mp;
  GenerateOptions g;
  g.prompt = {1};
  g.steps = 4;
  g.record = g.relevance = true;
  const GenerateResult r = generate(m, g);
  REQUIRE(r.record);
  REQUIRE(r.ids.size() == 5);
  const AttentionTensor* t = r.record->find("decoder.relevance");
  REQUIRE(t);
  CHECK(t->heads == 1);
  CHECK(t->queries == 5);
  CHECK(t->keys == 5);
  CHECK(t->query_axis == "tokens");
  CHECK(nlohmann::json::parse(r.record->metadata.at("relevance_rows")) == nlohmann::json({0, 1, 2, 3}));
  // Row 0 is the one-hot identity: the first token explains the second alone.
  CHECK(t->at(0, 0, 0) >= 1.f);
  for (int j = 1; j < 5; ++j) CHECK(t->at(0, 0, j) == 0.f);
  LmRelevanceOptions o;
  o.float64 = true;
  for (int q = 0; q < 5; ++q)
    for (int k = 0; k < 5; ++k) {
      CHECK(std::isfinite(t->at(0, q, k)));
      if (k > q || q == 4) CHECK(t->at(0, q, k) == 0.f);   // causal; the last token explains nothing
    }
  const AttentionTensor* tl = r.record->find("decoder.lrp_relevance");
  REQUIRE(tl);
  CHECK(tl->heads == 1);
  CHECK(tl->queries == 5);
  CHECK(tl->keys == 5);
  CHECK(r.record->metadata.at("lrp_relevance_method").find("CVPR") != std::string::npos);
  const nlohmann::json lin = nlohmann::json::parse(r.record->metadata.at("lrp_input_relevance"));
  const nlohmann::json lab = nlohmann::json::parse(r.record->metadata.at("lrp_absorbed"));
  REQUIRE(lin.size() == 4);
  REQUIRE(lab.size() == 4);
  for (size_t i = 0; i < 4; ++i) CHECK(lin[i].get<double>() + lab[i].get<double>() == doctest::Approx(1.0).epsilon(1e-4));
  for (int q = 0; q < 5; ++q)
    for (int k = 0; k < 5; ++k)
      if (k > q || q == 4) CHECK(tl->at(0, q, k) == 0.f);
  for (int q = 0; q < 4; ++q) {
    const LmExplanation e = lm_explain(m, r.ids, {{q, r.ids[q + 1]}}, o)[0];
    for (int k = 0; k <= q; ++k) {
      CHECK(t->at(0, q, k) == doctest::Approx(e.relevance[k]).epsilon(1e-4));
      CHECK(tl->at(0, q, k) == doctest::Approx(e.lrp_relevance[k]).epsilon(1e-4));
    }
  }
  r.record->validate("generated");

  // Only the 2nd generated token (row 1); a 2-token prompt shifts the rows by one.
  g.explain_step = 2;
  const GenerateResult r2 = generate(m, g);
  CHECK(nlohmann::json::parse(r2.record->metadata.at("relevance_rows")) == nlohmann::json({1}));
  g.prompt = {1, 5};
  g.explain_step = 0;
  const GenerateResult r3 = generate(m, g);
  CHECK(nlohmann::json::parse(r3.record->metadata.at("relevance_rows")) == nlohmann::json({1, 2, 3, 4}));
  const AttentionTensor* t3 = r3.record->find("decoder.relevance");
  for (int k = 0; k < 6; ++k) CHECK(t3->at(0, 0, k) == 0.f);   // a prompt prediction: not explained

  g.explain_step = 5;
  CHECK_THROWS_AS(generate(m, g), UsageError);
  g.explain_step = 0;
  g.record = false;
  CHECK_THROWS_AS(generate(m, g), UsageError);
  g.record = true;
  g.steps = 0;
  CHECK_THROWS_AS(generate(m, g), UsageError);
}

TEST_CASE("LM relevance CLI: generate --record relevance on the tiny gpt2 fixture; render heatmap draws it") {
  const fs::path hf = test::source_dir() / "tests" / "data" / "hf";
  const fs::path tmp = test::temp_dir("lm_relevance_cli");
  const std::string rec = (tmp / "g.safetensors").string();
  auto r = run_cli("generate --model '" + (hf / "gpt2-tiny").string() +
                   "' --prompt 'Hello the cat' --steps 4 --temperature 0 --record relevance -o '" + rec + "'");
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("4 generated token(s) explained") != std::string::npos);
  const AttentionRecord a = load_record(rec);
  const AttentionTensor* t = a.find("decoder.relevance");
  REQUIRE(t);
  CHECK(t->queries == t->keys);
  CHECK(t->queries == static_cast<int>(a.tokens.at("tokens").size()));
  for (float x : t->data) CHECK(std::isfinite(x));
  r = run_cli("render heatmap '" + rec + "' --tensor decoder.relevance -o '" + (tmp / "h.png").string() + "'");
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(fs::file_size(tmp / "h.png") > 1000);
  // render text shades the tokens by one row and its legend names the quantity.
  r = run_cli("render text '" + rec + "' --tensor decoder.relevance --query 3 -o '" + (tmp / "t.html").string() + "'");
  INFO(r.out);
  REQUIRE(r.code == 0);
  const std::string html = test::slurp(tmp / "t.html");
  CHECK(html.find("relevance (∇A ⊙ A, rolled out)") != std::string::npos);
  CHECK(html.find("attention weight") == std::string::npos);
  // The LRP rollout beside it, same shape and rows; render text draws it with its own legend.
  const AttentionTensor* tl = a.find("decoder.lrp_relevance");
  REQUIRE(tl);
  CHECK(tl->queries == t->queries);
  CHECK(tl->keys == t->keys);
  for (int q = 0; q < t->queries; ++q)
    for (int k = 0; k < t->keys; ++k) {
      CHECK(std::isfinite(tl->at(0, q, k)));
      CHECK(tl->at(0, q, k) >= 0.f);
      if (k > q) CHECK(tl->at(0, q, k) == 0.f);
      if (k == q && t->at(0, q, k) >= 1.f) CHECK(tl->at(0, q, k) >= 1.f);   // the explained rows
    }
  r = run_cli("render text '" + rec + "' --tensor decoder.lrp_relevance --query 3 -o '" + (tmp / "l.html").string() + "'");
  INFO(r.out);
  REQUIRE(r.code == 0);
  const std::string lhtml = test::slurp(tmp / "l.html");
  CHECK(lhtml.find("relevance (LRP ⊙ ∇A, rolled out)") != std::string::npos);
  CHECK(lhtml != html);
  // --minus-identity: the query token's own 1 taken out, the earlier tokens set the scale.
  r = run_cli("render text '" + rec + "' --tensor decoder.lrp_relevance --query 3 --minus-identity -o '" +
              (tmp / "m.html").string() + "'");
  INFO(r.out);
  REQUIRE(r.code == 0);
  const std::string mhtml = test::slurp(tmp / "m.html");
  CHECK(mhtml.find("relevance (LRP ⊙ ∇A, rolled out) − I") != std::string::npos);
  CHECK(mhtml != lhtml);
  CHECK(run_cli("render text '" + rec + "' --method rollout --minus-identity -o '" + (tmp / "x.html").string() + "'").code == 1);
  // Usage errors: no record to write, a step beyond --steps, --explain-step without relevance.
  CHECK(run_cli("generate --model '" + (hf / "gpt2-tiny").string() + "' --prompt hi --steps 1 --record relevance").code == 1);
  CHECK(run_cli("generate --model '" + (hf / "gpt2-tiny").string() + "' --prompt hi --steps 1 --record relevance --explain-step 2 -o '" + (tmp / "x.safetensors").string() + "'").code == 1);
  CHECK(run_cli("generate --model '" + (hf / "gpt2-tiny").string() + "' --prompt hi --steps 1 --explain-step 1 -o '" + (tmp / "x.safetensors").string() + "'").code == 1);
  CHECK(!fs::exists(tmp / "x.safetensors"));
}

namespace {
const fs::path kStories = test::shared_models_dir() / "stories260K" / "stories260K.gguf";
const bool kHaveStories = fs::exists(kStories);
}  // namespace

// Needs ../shared/models: skipped by doctest in the main run when absent; CTest's entry
// test_lm_relevance_models runs it with --no-skip and exits 77 (CTest: Skipped) when the file is missing.
TEST_CASE("LM relevance CLI: stories260K, every generated token explained" * doctest::test_suite("models") *
          doctest::skip(!kHaveStories)) {
  test::require_shared_model(kStories);
  const fs::path tmp = test::temp_dir("lm_relevance_stories");
  const std::string rec = (tmp / "s.safetensors").string();
  auto r = run_cli("generate --model '" + kStories.string() +
                   "' --prompt 'Once upon a time' --steps 30 --temperature 0 --record relevance -o '" + rec + "'");
  INFO(r.out);
  REQUIRE(r.code == 0);
  const AttentionRecord a = load_record(rec);
  const AttentionTensor* t = a.find("decoder.relevance");
  REQUIRE(t);
  const int T = static_cast<int>(a.tokens.at("tokens").size());
  const int P = std::stoi(a.metadata.at("prompt_tokens"));
  CHECK(t->heads == 1);
  CHECK(t->queries == T);
  CHECK(t->keys == T);
  CHECK(nlohmann::json::parse(a.metadata.at("relevance_rows")).size() == static_cast<size_t>(T - P));
  {
    const nlohmann::json lin = nlohmann::json::parse(a.metadata.at("lrp_input_relevance"));
    const nlohmann::json lab = nlohmann::json::parse(a.metadata.at("lrp_absorbed"));
    REQUIRE(lin.size() == static_cast<size_t>(T - P));
    for (size_t i = 0; i < lin.size(); ++i)   // conservation on the real model, float32
      CHECK(lin[i].get<double>() + lab[i].get<double>() == doctest::Approx(1.0).epsilon(1e-4));
  }
  for (int q = 0; q < T; ++q)
    for (int k = 0; k < T; ++k) {
      const float x = t->at(0, q, k);
      CHECK(std::isfinite(x));
      CHECK(x >= 0.f);
      if (k > q) CHECK(x == 0.f);
      if (k == q && q >= P - 1 && q < T - 1) CHECK(x >= 1.f);
    }
  const AttentionTensor* tl = a.find("decoder.lrp_relevance");
  REQUIRE(tl);
  CHECK(tl->queries == T);
  CHECK(tl->keys == T);
  for (int q = 0; q < T; ++q)
    for (int k = 0; k < T; ++k) {
      const float x = tl->at(0, q, k);
      CHECK(std::isfinite(x));
      CHECK(x >= 0.f);
      if (k > q || q < P - 1 || q == T - 1) CHECK(x == 0.f);
      if (k == q && q >= P - 1 && q < T - 1) CHECK(x >= 1.f);
    }
  r = run_cli("render text '" + rec + "' --tensor decoder.lrp_relevance --query " + std::to_string(T - 2) + " -o '" +
              (tmp / "l.html").string() + "'");
  INFO(r.out);
  CHECK(r.code == 0);
  r = run_cli("render heatmap '" + rec + "' --tensor decoder.relevance -o '" + (tmp / "h.png").string() + "'");
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(fs::file_size(tmp / "h.png") > 1000);
}
