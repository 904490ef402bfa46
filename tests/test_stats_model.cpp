// `attnviz stats --model M --inputs N`: a tiny model of each kind run on N inputs of its own data
// gives the same per-head table as `stats` over the records `record ...` writes for those inputs
// (one implementation, head_stats), plus the figure; the LM path on the gpt2 fixture; usage errors.
#include <doctest/doctest.h>

#include "test_util.hpp"

#include <attnviz/data/idx.hpp>
#include <attnviz/engine/rng.hpp>
#include <attnviz/models/mnist.hpp>
#include <attnviz/models/translator.hpp>

#include <nlohmann/json.hpp>

using namespace attnviz;
namespace fs = std::filesystem;
using attnviz::test::run_cli;

namespace {

nlohmann::json json_of(const std::string& out) {
  const size_t at = out.find('{');
  REQUIRE(at != std::string::npos);
  return nlohmann::json::parse(out.substr(at, out.rfind('}') - at + 1));
}

// The per-head rows of two JSON tables agree (tensor, head and every statistic).
void same_heads(const nlohmann::json& a, const nlohmann::json& b) {
  REQUIRE(a["heads"].size() == b["heads"].size());
  REQUIRE(a["heads"].size() > 0);
  CHECK(a["samples"] == b["samples"]);
  for (size_t i = 0; i < a["heads"].size(); ++i) {
    const auto& x = a["heads"][i];
    const auto& y = b["heads"][i];
    CHECK(x["tensor"] == y["tensor"]);
    CHECK(x["head"] == y["head"]);
    CHECK(x["rows"] == y["rows"]);
    for (const char* k : {"entropy", "sink", "distance", "top_k_mass"})
      CHECK(x[k].get<double>() == doctest::Approx(y[k].get<double>()).epsilon(1e-6));
  }
}

}  // namespace

TEST_CASE("stats --model on a tiny ViT: MNIST test images, the same table as stats over record mnist") {
  const fs::path dir = test::temp_dir("vit");
  nn::Rng rng(2);
  IdxImages im;
  im.count = 6, im.rows = im.cols = 8;
  for (int i = 0; i < 6 * 64; ++i) im.pixels.push_back(static_cast<std::uint8_t>(rng.below(256)));
  save_idx_images(dir / "t10k-images-idx3-ubyte", im);
  save_idx_labels(dir / "t10k-labels-idx1-ubyte", {1, 2, 3, 4, 5, 6});
  models::MnistConfig c;
  c.image = 8, c.patch = 4, c.dim = 8, c.depth = 2, c.heads = 2, c.mlp = 16;
  const std::string model = (dir / "vit.safetensors").string();
  models::save_mnist_model(model, *models::make_mnist_model(c, 1));
  const std::string data = "--data '" + dir.string() + "' ";
  auto r = run_cli(data + "stats --model '" + model + "' --inputs 4 --json -o '" + (dir / "s.png").string() + "'");
  INFO(r.out);
  REQUIRE(r.code == 0);
  const auto direct = json_of(r.out);
  CHECK(direct["samples"] == 4);
  CHECK(direct["heads"].size() == 4);   // 2 layers x 2 heads
  CHECK(direct["source"].get<std::string>().find("MNIST test images 0..3") != std::string::npos);
  CHECK(fs::file_size(dir / "s.png") > 1000);
  r = run_cli(data + "record mnist --model '" + model + "' --index 0,1,2,3 -o '" + (dir / "r.safetensors").string() + "'");
  REQUIRE(r.code == 0);
  r = run_cli("stats '" + (dir / "r.safetensors").string() + "' --json");
  REQUIRE(r.code == 0);
  same_heads(direct, json_of(r.out));
  // A table, not JSON, by default; more inputs than the set has are cut to the set.
  r = run_cli(data + "stats --model '" + model + "' --inputs 50");
  CHECK(r.code == 0);
  CHECK(r.out.find("6 sample(s)") != std::string::npos);
}

TEST_CASE("stats --model on a tiny translator: held-out pairs, the same table as stats over record translate") {
  const fs::path dir = test::temp_dir("translator");
  models::TranslatorConfig cfg;
  cfg.arch = "transformer";
  cfg.layers = 1, cfg.heads = 2, cfg.dim = 8, cfg.ff = 16;
  // A vocabulary from the generator's sentences, so the held-out pairs are mostly known words.
  const ParallelCorpus train = generate_synthetic({.count = 300, .seed = 1, .split = SyntheticSplit::Train});
  std::vector<std::vector<std::string>> s, t;
  for (const auto& p : train.pairs) s.push_back(p.source), t.push_back(p.target);
  auto m = models::make_translator(cfg, Vocabulary::build(s), Vocabulary::build(t));
  m->init(3);
  const std::string model = (dir / "tf.safetensors").string();
  models::save_translator(model, *m);
  auto r = run_cli("stats --model '" + model + "' --inputs 3 --json");
  INFO(r.out);
  REQUIRE(r.code == 0);
  const auto direct = json_of(r.out);
  CHECK(direct["samples"] == 3);
  CHECK(direct["heads"].size() == 6);   // encoder self, decoder self, cross: 2 heads each
  r = run_cli("record translate --model '" + model + "' --from-corpus 0,1,2 -o '" + (dir / "r.safetensors").string() + "'");
  REQUIRE(r.code == 0);
  r = run_cli("stats '" + (dir / "r.safetensors").string() + "' --json");
  REQUIRE(r.code == 0);
  same_heads(direct, json_of(r.out));
}

TEST_CASE("stats --model on an LM: N sampled continuations; usage errors") {
  const fs::path hf = test::source_dir() / "tests" / "data" / "hf";
  auto r = run_cli("stats --model '" + (hf / "gpt2-tiny").string() + "' --inputs 3 --steps 5 --json");
  INFO(r.out);
  REQUIRE(r.code == 0);
  const auto j = json_of(r.out);
  CHECK(j["samples"] == 3);
  REQUIRE(j["heads"].size() == 4);   // 2 layers x 2 heads
  for (const auto& h : j["heads"]) {
    CHECK(h["sink"].get<double>() > 0);   // causal: the first query row sees only key 0, weight 1
    CHECK(h["top_k_mass"].get<double>() <= 1.0 + 1e-6);
  }
  // Pretrained encoders have no data of their own; records and --model do not mix.
  CHECK(run_cli("stats --model '" + (hf / "bert-tiny").string() + "'").code == 1);
  CHECK(run_cli("stats").code == 1);
  CHECK(run_cli("stats x.safetensors --inputs 3").code == 1);
  const auto bad = run_cli("stats --model /nonexistent/model.safetensors");
  CHECK(bad.code == 2);
  CHECK(bad.out.find("/nonexistent/model.safetensors") != std::string::npos);
}
