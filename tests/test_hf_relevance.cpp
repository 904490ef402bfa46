// Chefer et al. (2021) relevance of the pretrained (Hugging Face) ViT, EncoderModel::explain_image:
// the attention gradients against central finite differences of an independent double-precision
// forward, conservation, the float64 PyTorch reference of scripts/make_chefer_reference.py
// (tests/data/chefer/hf_vit_reference.json, the tiny HF ViT fixture's weights), and the CLI end to end.
#include <doctest/doctest.h>

#include "test_chefer_reference.hpp"
#include "test_util.hpp"

#include <attnviz/analysis/saliency.hpp>
#include <attnviz/data/image.hpp>
#include <attnviz/engine/rng.hpp>
#include <attnviz/error.hpp>
#include <attnviz/io/safetensors.hpp>
#include <attnviz/models/encoder.hpp>
#include <attnviz/record/record.hpp>

#include <nlohmann/json.hpp>

#include <cmath>

using namespace attnviz;
using attnviz::test::run_cli;
namespace fs = std::filesystem;

namespace {

fs::path hf_dir(const std::string& name) { return test::source_dir() / "tests" / "data" / "hf" / name; }

nlohmann::json reference() {
  return nlohmann::json::parse(test::slurp(test::source_dir() / "tests" / "data" / "chefer" / "hf_vit_reference.json"));
}

std::vector<float> floats(const nlohmann::json& j) {
  std::vector<float> v;
  for (double x : j) v.push_back(static_cast<float>(x));
  return v;
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, static_cast<double>(std::abs(x)));
  return m;
}

// One attention weight (layer l, head h, query q, key k) moved by eps after the softmax.
struct Bump {
  int l = -1, h = 0, q = 0, k = 0;
  double eps = 0;
};

// The model's logits, written out in double precision from its weights (PyTorch's [out, in]) without
// the engine, from the first layer's input x: pre-LN (ViT) or post-LN (BERT family) blocks,
// exact-erf GELU; the ViT's classifier on the final LayerNorm's CLS row, a text model's on
// tanh / ReLU of its pooler.
Eigen::RowVectorXd reference_logits(const models::EncoderModel& m, const Mat& x0, const Bump& bump = {}) {
  using MD = Eigen::MatrixXd;
  const auto& c = m.config();
  const int D = c.dim, H = c.heads, Dh = D / H;
  auto W = [&](const std::string& n) -> MD { return m.weight(n).cast<double>(); };
  auto lin = [&](const MD& x, const std::string& n) {
    MD y = x * W(n + ".weight").transpose();
    y.rowwise() += W(n + ".bias").row(0);
    return y;
  };
  auto ln = [&](const MD& x, const std::string& n) {
    MD y(x.rows(), x.cols());
    const MD g = W(n + ".weight"), b = W(n + ".bias");
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
      const double mu = x.row(r).mean(), var = (x.row(r).array() - mu).square().mean();
      y.row(r) = ((x.row(r).array() - mu) / std::sqrt(var + c.norm_eps)).matrix().cwiseProduct(g.row(0)) + b.row(0);
    }
    return y;
  };
  MD x = x0.cast<double>();
  const int T = static_cast<int>(x.rows());
  for (int l = 0; l < c.layers; ++l) {
    const std::string p = "layer" + std::to_string(l) + ".";
    const MD h = c.pre_norm ? ln(x, p + "attn_norm") : x;
    const MD q = lin(h, p + "attn.q"), k = lin(h, p + "attn.k"), v = lin(h, p + "attn.v");
    MD ctx(T, D);
    for (int hd = 0; hd < H; ++hd) {
      MD s = q.middleCols(hd * Dh, Dh) * k.middleCols(hd * Dh, Dh).transpose() / std::sqrt(static_cast<double>(Dh));
      for (int i = 0; i < T; ++i) {
        const double mx = s.row(i).maxCoeff();
        s.row(i) = (s.row(i).array() - mx).exp().matrix();
        s.row(i) /= s.row(i).sum();
      }
      if (bump.l == l && bump.h == hd) s(bump.q, bump.k) += bump.eps;
      ctx.middleCols(hd * Dh, Dh) = s * v.middleCols(hd * Dh, Dh);
    }
    x += lin(ctx, p + "attn.out");
    if (!c.pre_norm) x = ln(x, p + "attn_norm");
    MD u = lin(c.pre_norm ? ln(x, p + "ffn_norm") : x, p + "ffn.up");
    u = u.unaryExpr([](double z) { return 0.5 * z * (1 + std::erf(z / std::sqrt(2.0))); });
    x += lin(u, p + "ffn.down");
    if (!c.pre_norm) x = ln(x, p + "ffn_norm");
  }
  if (c.family == models::EncoderFamily::Vit) return lin(ln(x.topRows(1), "final_norm"), "classifier").row(0);
  MD z = lin(x.topRows(1), "pooler");
  z = c.head_relu ? MD(z.cwiseMax(0.0)) : MD(z.array().tanh().matrix());
  return lin(z, "classifier").row(0);
}

// Every entry of every layer's d(logit)/dA against (f(A + eps) - f(A - eps)) / 2 eps, within 1e-4
// of the largest gradient.
void check_gradients(const models::EncoderModel& m, const Mat& x0, const models::EncoderModel::Explanation& e) {
  const double eps = 1e-4;
  for (int l = 0; l < m.config().layers; ++l) {
    const auto& g = e.gradients[l];
    const double scale = max_abs(g.data);
    REQUIRE(scale > 0);
    double worst = 0;
    for (int h = 0; h < g.H; ++h)
      for (int q = 0; q < g.Nq; ++q)
        for (int k = 0; k < g.Nk; ++k) {
          const double fd = (reference_logits(m, x0, {l, h, q, k, eps})(e.target) -
                             reference_logits(m, x0, {l, h, q, k, -eps})(e.target)) / (2 * eps);
          worst = std::max(worst, std::abs(fd - g.at(0, h)[q * g.Nk + k]));
        }
    INFO("layer " << l << ": max |fd - grad| " << worst << " of max |grad| " << scale);
    CHECK(worst <= 1e-4 * scale);
  }
}

// The explanation as a record, as record_vit_image stores it (weights, gradients, relevance).
AttentionRecord as_record(const models::EncoderModel::Explanation& e) {
  AttentionRecord r;
  for (size_t l = 0; l < e.weights.size(); ++l) {
    const std::string name = "vit.layer" + std::to_string(l) + ".self";
    r.tensors.push_back(e.weights[l].tensor(0, name, "tokens", "tokens"));
    r.gradients.push_back(e.gradients[l].tensor(0, name, "tokens", "tokens"));
    r.relevance.push_back(e.relevance[l].tensor(0, name, "tokens", "tokens"));
  }
  return r;
}

}  // namespace

TEST_CASE("HF ViT: attention gradients against central finite differences of a double-precision forward") {
  const models::LoadedEncoder enc = models::load_encoder_hf(hf_dir("vit-tiny"));
  const models::EncoderModel& m = *enc.model;
  CHECK(m.config().norm_eps == doctest::Approx(1e-12));
  CHECK(m.config().act == models::EncoderAct::GeluErf);
  const std::vector<float> px = models::vit_preprocess(enc, read_image(hf_dir("vit-tiny.ppm")));
  const Mat x0 = m.embed_image(px);
  const Eigen::RowVectorXd logits = reference_logits(m, x0);
  for (int target : {0, 2}) {
    INFO("target " << target);
    const auto e = m.explain_image(px, target);
    REQUIRE(e.target == target);
    for (int j = 0; j < m.config().labels; ++j) CHECK(e.logits(0, j) == doctest::Approx(logits(j)).epsilon(1e-5));
    // The engine forward's weights are the ones the record's kernel forward gives.
    models::AttentionCollector col;
    m.forward_image(px, &col);
    for (int l = 0; l < m.config().layers; ++l) {
      const auto& w = col.w.at("vit.layer" + std::to_string(l) + ".self").data;
      REQUIRE(w.size() == e.weights[l].data.size());
      for (size_t i = 0; i < w.size(); ++i) CHECK(e.weights[l].data[i] == doctest::Approx(w[i]).epsilon(1e-5).scale(1e-3));
    }
    check_gradients(m, x0, e);
  }
}

TEST_CASE("HF ViT relevance matches the float64 PyTorch reference (tiny fixture's weights)") {
  const models::LoadedEncoder enc = models::load_encoder_hf(hf_dir("vit-tiny"));
  const auto ref = reference();
  REQUIRE(ref["cases"].size() == 4);
  // The fixture image's pixels in the reference are vit_preprocess's.
  const std::vector<float> fixture = models::vit_preprocess(enc, read_image(hf_dir("vit-tiny.ppm")));
  const std::vector<float> first = floats(ref["images"][0]);
  REQUIRE(first.size() == fixture.size());
  double worst = 0;
  for (size_t i = 0; i < first.size(); ++i) worst = std::max(worst, static_cast<double>(std::abs(first[i] - fixture[i])));
  CHECK(worst < 1e-5);
  for (const auto& c : ref["cases"]) {
    const int image = c["image"], target = c["target"];
    INFO("image " << image << ", target " << target);
    const auto e = enc.model->explain_image(floats(ref["images"][image]), target);
    for (size_t j = 0; j < c["logits"].size(); ++j)
      CHECK(e.logits(0, static_cast<Eigen::Index>(j)) == doctest::Approx(c["logits"][j].get<double>()).epsilon(1e-4));
    Eigen::Index pred = 0;
    e.logits.row(0).maxCoeff(&pred);
    CHECK(pred == c["predicted"].get<int>());
    // Conservation: the relevance at the token embeddings plus what the Linear layers absorbed is
    // the 1 put on the logit (this D = 16 model absorbs nothing).
    const double sum = e.input_relevance.cast<double>().sum();
    CHECK(sum == doctest::Approx(c["input_relevance_sum"].get<double>()).epsilon(1e-4));
    CHECK(sum + c["absorbed"].get<double>() == doctest::Approx(1.0).epsilon(1e-4));
    CHECK(e.absorbed == doctest::Approx(c["absorbed"].get<double>()).epsilon(1e-4).scale(1));
    test::check_chefer_reference_case(as_record(e), c);
  }
}

TEST_CASE("HF ViT relevance is conserved on a wider random ViT (D 32, 3 layers, 5 labels)") {
  models::EncoderConfig cfg;
  cfg.family = models::EncoderFamily::Vit;
  cfg.name = "random";
  cfg.layers = 3, cfg.dim = 32, cfg.heads = 4, cfg.ffn = 64;
  cfg.image_size = 16, cfg.patch_size = 4, cfg.channels = 3, cfg.labels = 5;
  cfg.positions = 17;
  cfg.pre_norm = true;
  models::EncoderModel m(cfg);
  m.init_random(7, 0.3f);
  nn::Rng rng(11);
  for (const auto& s : models::encoder_tensor_table(cfg)) {   // non-zero biases and LayerNorm parameters
    Mat& w = m.weight(s.name);
    for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] += rng.normal(0.f, 0.1f);
  }
  std::vector<float> px(3 * 16 * 16);
  for (float& v : px) v = rng.normal(0.f, 1.f);
  for (int target = 0; target < 5; ++target) {
    const auto e = m.explain_image(px, target);
    INFO("target " << target);
    CHECK(e.input_relevance.cast<double>().sum() == doctest::Approx(1.0).epsilon(1e-4));
    CHECK(e.absorbed == 0);
  }
  CHECK(m.explain_image(px).target == [&] {
    Eigen::Index k = 0;
    m.forward_image(px).row(0).maxCoeff(&k);
    return static_cast<int>(k);
  }());
  CHECK_THROWS_AS(m.explain_image(px, 5), UsageError);
}

TEST_CASE("CLI: record vit --record relevance, then render overlay --method chefer") {
  const fs::path tmp = test::temp_dir("vit_relevance");
  const std::string model = "--model '" + hf_dir("vit-tiny").string() + "' --image '" + hf_dir("vit-tiny.ppm").string() + "'";
  const auto r = run_cli("record vit " + model + " --record relevance -o '" + (tmp / "v.safetensors").string() + "'");
  INFO(r.out);
  REQUIRE(r.code == 0);
  const AttentionRecord rec = load_record(tmp / "v.safetensors");
  REQUIRE(rec.gradients.size() == 2);
  REQUIRE(rec.relevance.size() == 2);
  CHECK(rec.relevance[1].name == "vit.layer1.self");
  CHECK(rec.metadata.at("explained") == "1");   // the reference's prediction for this image
  const auto ref = reference();
  const auto& c0 = ref["cases"][0];
  for (int k = 0; k < 17; ++k)
    CHECK(rec.relevance[1].at(1, 0, k) == doctest::Approx(c0["relevance_cls"][1][1][k].get<double>()).epsilon(1e-4).scale(1e-2));
  CHECK(run_cli("inspect '" + (tmp / "v.safetensors").string() + "'").out.find("(+relevance)") != std::string::npos);
  for (const char* method : {"chefer", "grad-rollout", "cls"}) {
    const auto o = run_cli("render overlay '" + (tmp / "v.safetensors").string() + "' --method " + method + " -o '" +
                           (tmp / (std::string(method) + ".png")).string() + "'");
    INFO(method << ": " << o.out);
    REQUIRE(o.code == 0);
  }
  const DecodedImage chefer = read_image(tmp / "chefer.png"), cls = read_image(tmp / "cls.png");
  REQUIRE(chefer.pixels.size() == cls.pixels.size());
  double diff = 0;
  for (size_t i = 0; i < cls.pixels.size(); ++i) diff += std::abs(chefer.pixels[i] - cls.pixels[i]);
  CHECK(diff > 1.0);
  // --class: another logit explained.
  const auto k2 = run_cli("record vit " + model + " --record relevance --class 2 -o '" + (tmp / "k.safetensors").string() + "'");
  INFO(k2.out);
  REQUIRE(k2.code == 0);
  const AttentionRecord rk = load_record(tmp / "k.safetensors");
  CHECK(rk.metadata.at("explained") == "2");
  CHECK(rk.relevance[1].at(1, 0, 3) == doctest::Approx(ref["cases"][1]["relevance_cls"][1][1][3].get<double>()).epsilon(1e-4).scale(1e-2));
  // Usage errors (exit 1): a class outside the labels, --class without relevance.
  const auto bad = run_cli("record vit " + model + " --record relevance --class 3 -o '" + (tmp / "b.safetensors").string() + "'");
  CHECK(bad.code == 1);
  CHECK(bad.out.find("--class 3 outside the model's 3 labels") != std::string::npos);
  CHECK(run_cli("record vit " + model + " --class 1 -o '" + (tmp / "b.safetensors").string() + "'").code == 1);
  CHECK_FALSE(fs::exists(tmp / "b.safetensors"));
  // A tanh-GELU ViT: the engine's blocks cannot run it; exit 2 naming its config.json.
  const fs::path d = tmp / "vit-tanh";
  fs::create_directories(d);
  for (const char* f : {"model.safetensors", "preprocessor_config.json"}) fs::copy_file(hf_dir("vit-tiny") / f, d / f);
  auto cfg = nlohmann::json::parse(test::slurp(hf_dir("vit-tiny") / "config.json"));
  cfg["hidden_act"] = "gelu_new";
  test::spit(d / "config.json", cfg.dump());
  const auto t = run_cli("record vit --model '" + d.string() + "' --image '" + hf_dir("vit-tiny.ppm").string() +
                         "' --record relevance -o '" + (tmp / "t.safetensors").string() + "'");
  CHECK(t.code == 2);
  CHECK(t.out.find("config.json") != std::string::npos);
  CHECK(t.out.find("tanh GELU") != std::string::npos);
  CHECK_FALSE(fs::exists(tmp / "t.safetensors"));
}

namespace {

// A copy of a tiny text fixture with a sequence-classification head of 3 labels under the family's
// checkpoint names (random weights; bert-tiny already has its pooler) and id2label.
fs::path with_head(const std::string& fixture, const fs::path& tmp) {
  const fs::path d = tmp / (fixture + "-cls");
  fs::create_directories(d);
  for (const auto& f : fs::directory_iterator(hf_dir(fixture))) fs::copy_file(f.path(), d / f.path().filename());
  StFile st = load_safetensors(d / "model.safetensors");
  nn::Rng rng(3);
  auto add = [&](const std::string& name, std::vector<std::int64_t> shape, float sd) {
    StTensor t;
    t.name = name;
    t.dtype = "F32";
    t.shape = shape;
    t.data.resize(static_cast<size_t>(t.numel()));
    for (float& v : t.data) v = rng.normal(0.f, sd);
    st.tensors.push_back(std::move(t));
  };
  const std::int64_t D = 16;
  const std::string pool = fixture == "roberta-tiny" ? "classifier.dense" : fixture == "distilbert-tiny" ? "pre_classifier" : "";
  const std::string cls = fixture == "roberta-tiny" ? "classifier.out_proj" : "classifier";
  if (!pool.empty()) {
    add(pool + ".weight", {D, D}, 0.5f);
    add(pool + ".bias", {D}, 0.1f);
  }
  add(cls + ".weight", {3, D}, 0.8f);
  add(cls + ".bias", {3}, 0.1f);
  save_safetensors(d / "model.safetensors", st);
  auto cfg = nlohmann::json::parse(test::slurp(d / "config.json"));
  cfg["id2label"] = {{"0", "negative"}, {"1", "neutral"}, {"2", "positive"}};
  test::spit(d / "config.json", cfg.dump());
  return d;
}

}  // namespace

TEST_CASE("BERT-family classification heads: loaded, gradients against finite differences, conservation") {
  const fs::path tmp = test::temp_dir("text_heads");
  // Without a head nothing changes, and there is no label to explain.
  const models::LoadedEncoder bare = models::load_encoder_hf(hf_dir("bert-tiny"));
  CHECK(bare.model->config().labels == 0);
  CHECK_THROWS_AS(bare.model->explain_tokens({2, 5, 3}, {}), UsageError);
  bool absorbed_any = false;
  for (const std::string fixture : {"bert-tiny", "distilbert-tiny", "roberta-tiny"}) {
    INFO(fixture);
    const models::LoadedEncoder enc = models::load_encoder_hf(with_head(fixture, tmp));
    const models::EncoderModel& m = *enc.model;
    REQUIRE(m.config().labels == 3);
    CHECK(m.config().head_relu == (fixture == "distilbert-tiny"));
    CHECK(enc.label_names == std::vector<std::string>{"negative", "neutral", "positive"});
    CHECK_FALSE(m.config().pre_norm);
    const std::vector<int> ids = {2, 7, 11, 5, 9, 13, 3};
    const Mat x0 = m.embed_tokens(ids, {});
    const Eigen::RowVectorXd logits = reference_logits(m, x0);
    // The encoder's own forward (kernel path) gives the same hidden states as the reference's blocks.
    models::AttentionCollector col;
    m.forward_tokens(ids, {}, &col);
    for (int target : {-1, 0, 2}) {
      INFO("target " << target);
      const auto e = m.explain_tokens(ids, {}, target);
      if (target >= 0) CHECK(e.target == target);
      Eigen::Index best = 0;
      logits.maxCoeff(&best);
      if (target < 0) CHECK(e.target == static_cast<int>(best));
      for (int j = 0; j < 3; ++j) CHECK(e.logits(0, j) == doctest::Approx(logits(j)).epsilon(1e-5).scale(1));
      for (int l = 0; l < m.config().layers; ++l) {
        const auto& w = col.w.at("encoder.layer" + std::to_string(l) + ".self").data;
        REQUIRE(w.size() == e.weights[l].data.size());
        double worst = 0;
        for (size_t i = 0; i < w.size(); ++i) worst = std::max(worst, static_cast<double>(std::abs(e.weights[l].data[i] - w[i])));
        CHECK(worst < 1e-5);
      }
      check_gradients(m, x0, e);
      // Conservation: the relevance at the embeddings (the embedding LayerNorm passes it on) plus
      // what Linear outputs without a positive contribution absorbed (signed: here up to a few
      // percent either way at D 16) is the 1 put on the logit.
      CHECK(e.input_relevance.cast<double>().sum() + e.absorbed == doctest::Approx(1.0).epsilon(1e-4));
      absorbed_any = absorbed_any || e.absorbed != 0;
    }
  }
  CHECK(absorbed_any);   // the case the absorbed term is for occurs (roberta-tiny)
}

TEST_CASE("CLI: record encoder --record relevance on a BERT classifier; refused without a head") {
  const fs::path tmp = test::temp_dir("text_cli");
  const fs::path bert = with_head("bert-tiny", tmp);
  const std::string out = (tmp / "b.safetensors").string();
  const auto r = run_cli("record encoder --model '" + bert.string() + "' --text 'the cat sat' --record relevance -o '" + out + "'");
  INFO(r.out);
  REQUIRE(r.code == 0);
  const AttentionRecord rec = load_record(out);
  rec.validate("b");
  REQUIRE(rec.gradients.size() == 2);
  REQUIRE(rec.relevance.size() == 2);
  CHECK(rec.relevance[0].name == "encoder.layer0.self");
  const std::vector<std::string> names{"negative", "neutral", "positive"};
  const int explained = std::stoi(rec.metadata.at("explained"));
  REQUIRE(explained >= 0);
  CHECK(rec.metadata.at("prediction") == names.at(explained));
  CHECK(r.out.find("explained class " + std::to_string(explained)) != std::string::npos);
  // The record's maps are the library's explanation of the same tokens.
  const models::LoadedEncoder enc = models::load_encoder_hf(bert);
  std::vector<int> ids;
  for (const auto& v : nlohmann::json::parse(rec.metadata.at("token_ids"))) ids.push_back(v.get<int>());
  const auto e = enc.model->explain_tokens(ids, {}, explained);
  CHECK(max_abs(rec.relevance[1].data) == doctest::Approx(max_abs(e.relevance[1].data)).epsilon(1e-5));
  SaliencyOptions so;
  so.method = SaliencyMethod::Chefer;
  CHECK(token_saliency(rec, so, out).size() == ids.size());
  for (const char* view : {"render text", "render heatmap"}) {
    const std::string args = std::string(view) == "render text" ? " --method chefer" : " -t encoder.layer1.self";
    const auto o = run_cli(std::string(view) + " '" + out + "'" + args + " -o '" + (tmp / "v.png").string() + "'");
    INFO(view << ": " << o.out);
    CHECK(o.code == 0);
  }
  // --class 2 explains the "positive" logit.
  const auto k = run_cli("record encoder --model '" + bert.string() + "' --text 'the cat sat' --record relevance --class 2 -o '" +
                         (tmp / "k.safetensors").string() + "'");
  INFO(k.out);
  REQUIRE(k.code == 0);
  CHECK(load_record(tmp / "k.safetensors").metadata.at("explained") == "2");
  CHECK(run_cli("record encoder --model '" + bert.string() + "' --text 'x' --record relevance --class 3 -o '" +
                (tmp / "n.safetensors").string() + "'").code == 1);
  // No classification head: one line naming the directory, exit 2, nothing written.
  const auto bare = run_cli("record encoder --model '" + hf_dir("bert-tiny").string() + "' --text 'the cat sat' --record relevance -o '" +
                            (tmp / "n.safetensors").string() + "'");
  CHECK(bare.code == 2);
  CHECK(bare.out.find(hf_dir("bert-tiny").string()) != std::string::npos);
  CHECK(bare.out.find("no sequence-classification head") != std::string::npos);
  CHECK_FALSE(fs::exists(tmp / "n.safetensors"));
}
