// The MNIST ViT on the engine's encoder blocks: the numbers of the ViT it replaced (known answers),
// files of earlier releases (packed q|k|v) load and resume, and finite-difference checks of every
// parameter of a whole tiny ViT.
#include <attnviz/error.hpp>
#include <attnviz/models/mnist.hpp>
#include <attnviz/models/model_file.hpp>
#include <attnviz/models/vit.hpp>

#include <doctest/doctest.h>

#include "test_engine_util.hpp"
#include "test_util.hpp"

using namespace attnviz;
using namespace attnviz::models;
namespace fs = std::filesystem;

namespace {

// The three fixed inputs of the known answers: [3, 64] pixels from nn::Rng(5).
Mat known_inputs() {
  nn::Rng rng(5);
  Mat x(3, 64);
  for (int i = 0; i < x.size(); ++i) x.data()[i] = rng.uniform();
  return x;
}

}  // namespace

TEST_CASE("the ViT on the engine's blocks reproduces the logits, weights and weight gradients of the ViT it replaced") {
  // tests/data/mnist_vit_qkv.safetensors was written by attnviz at 71fc780, whose ViT had its own
  // attention and one packed "attn.qkv" projection: make_mnist_model(8x8 images, patch 2, dim 16,
  // depth 2, heads 2, mlp 32, classes 4; seed 11), every parameter then moved by
  // 0.2 * (U(0,1) - 0.5) from nn::Rng(3) so that biases and LayerNorms are not at their init.
  // The numbers below are what that code printed for known_inputs() (logits), and, after backward
  // with the dlogits below, attention weights and d(loss)/d(weights) at a few (sample, layer, head,
  // query, key). Layer 1's non-CLS query rows get no gradient (only the CLS row reaches the head).
  LoadedModel lm = load_model(test::source_dir() / "tests/data/mnist_vit_qkv.safetensors");
  auto& vit = dynamic_cast<VitModel&>(*lm.model);
  CHECK(vit.params().params().size() == 4 + 2 * 16 + 4);   // ln1 2, wq..wo 8, ln2 2, fc1 2, fc2 2
  CHECK(vit.params().find("vit.layer1.attn.wk.bias") != nullptr);
  const float logits_then[12] = {-1.93647802, 1.11561131, -0.88876158, 1.15944266, -1.87366986, 1.14339089, -0.56373179, 0.947319925, -1.86433637, 1.06441784, -0.60041666, 0.903235555};
  struct Entry { int b, l, h, q, k; float w, dw; };
  const Entry then[] = {
      {0, 0, 0, 0, 0, 0.0302864276, -0.197182685},
      {0, 0, 1, 0, 5, 0.0571975261, -0.285166889},
      {0, 0, 0, 3, 7, 0.0752668083, 0.0145938927},
      {0, 0, 1, 16, 2, 0.0613259226, -0.0157576054},
      {0, 0, 0, 0, 16, 0.0665048882, 0.0539795756},
      {0, 0, 1, 9, 9, 0.0494159646, 0.00445045857},
      {0, 1, 0, 0, 0, 0.057505168, 0.00690421602},
      {0, 1, 1, 0, 5, 0.0521159247, 0.903721511},
      {0, 1, 0, 3, 7, 0.0624015592, 0},
      {0, 1, 1, 16, 2, 0.0525756702, 0},
      {0, 1, 0, 0, 16, 0.0640268102, -0.349572986},
      {0, 1, 1, 9, 9, 0.0599392578, 0},
      {2, 0, 0, 0, 0, 0.0335954875, -1.30375421},
      {2, 0, 1, 0, 5, 0.0551548451, -0.047381416},
      {2, 0, 0, 3, 7, 0.0708188191, -0.031911917},
      {2, 0, 1, 16, 2, 0.0595035516, 0.0328212306},
      {2, 0, 0, 0, 16, 0.0600841455, 0.687805533},
      {2, 0, 1, 9, 9, 0.0471415147, 0.0391260982},
      {2, 1, 0, 0, 0, 0.0658684745, -0.327353477},
      {2, 1, 1, 0, 5, 0.0481217243, 0.617066503},
      {2, 1, 0, 3, 7, 0.0665806383, 0},
      {2, 1, 1, 16, 2, 0.0688322857, 0},
      {2, 1, 0, 0, 16, 0.0541318543, -0.723520875},
      {2, 1, 1, 9, 9, 0.0709641501, 0},
  };
  AttentionCollector sink(true);
  Mat x = known_inputs();
  Mat logits = vit.forward(x, &sink);
  REQUIRE(logits.rows() == 3);
  REQUIRE(logits.cols() == 4);
  for (int i = 0; i < 12; ++i) CHECK(logits.data()[i] == doctest::Approx(logits_then[i]).epsilon(1e-5).scale(1e-5));
  Mat d = Mat::Zero(3, 4);
  d(0, 1) = 1, d(1, 3) = 1, d(2, 0) = 1, d(2, 2) = -0.5f;
  vit.backward(d, &sink);
  for (int b : {0, 2}) {
    auto w = vit.attention(b);
    auto g = vit.attention_grads(b);
    REQUIRE(w.size() == 2);
    REQUIRE(g.size() == 2);
    CHECK(w[1].name == "vit.layer1.self");
    CHECK(w[1].heads == 2);
    CHECK(w[1].queries == 17);
  }
  int checked = 0;
  for (const Entry& e : then) {
    INFO("sample " << e.b << " layer " << e.l << " head " << e.h << " query " << e.q << " key " << e.k);
    CHECK(vit.attention(e.b)[e.l].at(e.h, e.q, e.k) == doctest::Approx(e.w).epsilon(1e-5).scale(1e-6));
    CHECK(vit.attention_grads(e.b)[e.l].at(e.h, e.q, e.k) == doctest::Approx(e.dw).epsilon(1e-4).scale(1e-5));
    ++checked;
  }
  CHECK(checked == 24);
  // The sink received the same tensors, under the record names.
  REQUIRE(sink.names.size() == 2);
  CHECK(sink.dw.at("vit.layer0.self").at(2, 1)[16 * 17 + 2] == vit.attention_grads(2)[0].at(1, 16, 2));
}

TEST_CASE("the ViT computes attention weights and their gradients only for a sink; a sink changes nothing") {
  LoadedModel lm = load_model(test::source_dir() / "tests/data/mnist_vit_qkv.safetensors");
  auto& vit = dynamic_cast<VitModel&>(*lm.model);
  Mat x = known_inputs();
  Mat plain = vit.forward(x);
  CHECK(vit.attention(0).empty());
  Mat d = Mat::Ones(3, 4);
  vit.params().zero_grad();
  vit.backward(d);
  CHECK(vit.attention_grads(0).empty());
  std::vector<Mat> g_plain;
  for (nn::Param* p : vit.params().params()) g_plain.push_back(p->grad);
  AttentionCollector no_grads(false);
  Mat rec = vit.forward(x, &no_grads);
  CHECK((plain.array() == rec.array()).all());
  CHECK(vit.attention(0).size() == 2);
  vit.params().zero_grad();
  vit.backward(d, &no_grads);
  CHECK(vit.attention_grads(0).empty());
  CHECK(no_grads.dw.empty());
  size_t i = 0;
  for (nn::Param* p : vit.params().params()) CHECK((p->grad.array() == g_plain[i++].array()).all());
}

TEST_CASE("files and checkpoints with the packed q|k|v projection are upgraded; a bad one is named") {
  const fs::path old = test::source_dir() / "tests/data/mnist_vit_qkv.safetensors";
  StFile f = load_safetensors(old);
  REQUIRE(f.find("vit.layer0.attn.qkv.weight"));
  const StTensor qkv = *f.find("vit.layer0.attn.qkv.weight");   // [16, 48]
  const StTensor bias = *f.find("vit.layer0.attn.qkv.bias");
  // as a checkpoint holds them: the parameters and Adam's moments under a prefix
  StTensor m = qkv;
  m.name = "adam.m.vit.layer0.attn.qkv.weight";
  f.tensors.push_back(m);
  VitModel::upgrade_vit_tensors(f);
  CHECK(f.find("vit.layer0.attn.qkv.weight") == nullptr);
  CHECK(f.find("vit.layer0.mlp.fc1.weight") == nullptr);
  CHECK(f.find("vit.layer1.fc2.bias") != nullptr);
  CHECK(f.find("vit.layer1.attn.wo.weight") != nullptr);
  const StTensor* wk = f.find("vit.layer0.attn.wk.weight");
  const StTensor* mv = f.find("adam.m.vit.layer0.attn.wv.weight");
  const StTensor* bq = f.find("vit.layer0.attn.wq.bias");
  REQUIRE(wk);
  REQUIRE(mv);
  REQUIRE(bq);
  CHECK(wk->shape == std::vector<std::int64_t>{16, 16});
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) {
      CHECK(wk->data[r * 16 + c] == qkv.data[r * 48 + 16 + c]);
      CHECK(mv->data[r * 16 + c] == qkv.data[r * 48 + 32 + c]);
    }
  for (int c = 0; c < 16; ++c) CHECK(bq->data[c] == bias.data[c]);
  // A packed projection whose width is not 3 x D stays as it is and is refused by name on load.
  auto dir = test::temp_dir("vit_upgrade");
  StFile bad = load_safetensors(old);
  for (StTensor& t : bad.tensors)
    if (t.name == "vit.layer1.attn.qkv.bias") t.shape = {47}, t.data.resize(47);
  save_safetensors(dir / "bad.safetensors", bad);
  CHECK_THROWS_WITH_AS(load_model(dir / "bad.safetensors"), doctest::Contains("tensor 'vit.layer1.attn.wq.bias' is missing"), InputError);
  // Saved again, the model has the engine's names and loads back unchanged.
  LoadedModel lm = load_model(old);
  save_model(dir / "new.safetensors", *lm.model);
  StFile again = load_safetensors(dir / "new.safetensors");
  CHECK(again.find("vit.layer0.attn.wq.weight") != nullptr);
  CHECK(again.find("vit.layer0.attn.qkv.weight") == nullptr);
  LoadedModel back = load_model(dir / "new.safetensors");
  for (nn::Param* p : lm.model->params().params())
    CHECK((back.model->params().find(p->name)->value.array() == p->value.array()).all());
}

TEST_CASE("every parameter of a whole tiny ViT (embedding, blocks, norm, head) matches central differences") {
  MnistConfig cfg;
  cfg.image = 4, cfg.patch = 2, cfg.dim = 8, cfg.depth = 2, cfg.heads = 2, cfg.mlp = 12, cfg.classes = 3;
  auto m = make_mnist_model(cfg, 4);
  nn::Rng rng(8);
  for (nn::Param* p : m->params().params())   // move biases and LayerNorms off their init
    for (Eigen::Index i = 0; i < p->value.size(); ++i) p->value.data()[i] += 0.2f * (rng.uniform() - 0.5f);
  Mat x(2, 16);
  for (int i = 0; i < x.size(); ++i) x.data()[i] = rng.uniform();
  test::check_all_gradients("vit", nullptr, m->params(), [&] { return m->forward(x); },
                            [&](const Mat& dy) { m->backward(dy); return Mat(); });
}

TEST_CASE("the training forward (logits_only) runs the last block on the CLS rows: the same logits and gradients") {
  LoadedModel lm = load_model(test::source_dir() / "tests/data/mnist_vit_qkv.safetensors");
  auto& vit = dynamic_cast<VitModel&>(*lm.model);
  Mat x = known_inputs();
  Mat d = Mat::Ones(3, 4);
  d(1, 2) = -2.f;
  const Mat full = vit.forward(x);
  vit.params().zero_grad();
  vit.backward(d);
  std::vector<Mat> g_full;
  for (nn::Param* p : vit.params().params()) g_full.push_back(p->grad);
  vit.logits_only = true;
  const Mat fast = vit.forward(x);
  vit.params().zero_grad();
  vit.backward(d);
  CHECK((fast - full).cwiseAbs().maxCoeff() <= 1e-5f * (1.f + full.cwiseAbs().maxCoeff()));
  size_t i = 0;
  for (nn::Param* p : vit.params().params()) {
    INFO(p->name);
    const Mat& g = g_full[i++];
    CHECK((p->grad - g).cwiseAbs().maxCoeff() <= 1e-5f * (1.f + g.cwiseAbs().maxCoeff()));
  }
  // A sink still gets every layer's full weights; their gradients need a forward with a sink.
  AttentionCollector sink(false);
  vit.forward(x, &sink);
  CHECK(vit.attention(0).size() == 2);
  vit.forward(x);
  AttentionCollector grads(true);
  CHECK_THROWS_AS(vit.backward(d, &grads), std::logic_error);
}

TEST_CASE("every parameter of a whole tiny ViT matches central differences in the training forward too") {
  MnistConfig cfg;
  cfg.image = 4, cfg.patch = 2, cfg.dim = 8, cfg.depth = 2, cfg.heads = 2, cfg.mlp = 12, cfg.classes = 3;
  auto m = make_mnist_model(cfg, 4);
  m->logits_only = true;
  nn::Rng rng(8);
  for (nn::Param* p : m->params().params())
    for (Eigen::Index i = 0; i < p->value.size(); ++i) p->value.data()[i] += 0.2f * (rng.uniform() - 0.5f);
  Mat x(2, 16);
  for (int i = 0; i < x.size(); ++i) x.data()[i] = rng.uniform();
  test::check_all_gradients("vit-train", nullptr, m->params(), [&] { return m->forward(x); },
                            [&](const Mat& dy) { m->backward(dy); return Mat(); });
}
