// Tests of the MNIST models: learning a tiny synthetic IDX task end to end, exact resume, NaN
// stop, and record contents and shapes (the ViT's numbers and gradients: test_vit.cpp).
#include <attnviz/error.hpp>
#include <attnviz/data/idx.hpp>
#include <attnviz/models/mnist.hpp>
#include <attnviz/train/tasks.hpp>
#include <attnviz/analysis/saliency.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "test_util.hpp"

using namespace attnviz;
using namespace attnviz::models;
using namespace attnviz::train;
namespace fs = std::filesystem;

namespace {

// 8x8 images; class = the quadrant holding a bright 2x2 square, on faint noise.
IdxImages quadrant_images(int count, std::uint64_t seed, std::vector<std::uint8_t>& labels) {
  nn::Rng rng(seed);
  IdxImages im;
  im.count = count, im.rows = 8, im.cols = 8;
  im.pixels.assign(static_cast<size_t>(count) * 64, 0);
  labels.clear();
  for (int i = 0; i < count; ++i) {
    int q = rng.below(4);
    labels.push_back(static_cast<std::uint8_t>(q));
    std::uint8_t* p = im.pixels.data() + static_cast<size_t>(i) * 64;
    for (int j = 0; j < 64; ++j) p[j] = static_cast<std::uint8_t>(rng.below(40));
    int r0 = (q / 2) * 4 + rng.below(3), c0 = (q % 2) * 4 + rng.below(3);
    for (int r = r0; r < r0 + 2; ++r)
      for (int c = c0; c < c0 + 2; ++c) p[r * 8 + c] = 255;
  }
  return im;
}

// Writes train/t10k IDX files into dir (through the real writer) and returns the folder.
fs::path write_task(const std::string& name) {
  fs::path dir = test::temp_dir(name);
  std::vector<std::uint8_t> lab;
  save_idx_images(dir / "train-images-idx3-ubyte", quadrant_images(600, 1, lab));
  save_idx_labels(dir / "train-labels-idx1-ubyte", lab);
  save_idx_images(dir / "t10k-images-idx3-ubyte", quadrant_images(200, 2, lab));
  save_idx_labels(dir / "t10k-labels-idx1-ubyte", lab);
  return dir;
}

MnistConfig tiny(const std::string& arch = "vit") {
  MnistConfig c;
  c.arch = arch;
  c.image = 8;
  c.patch = 2;
  c.dim = 16;
  c.depth = 2;
  c.heads = 2;
  c.mlp = 32;
  c.classes = 4;
  return c;
}

MnistTrainOptions quick(int epochs) {
  MnistTrainOptions o;
  o.epochs = epochs;
  o.batch = 32;
  o.lr = 3e-3f;
  o.warmup_epochs = 0.5f;
  o.shift = 0;
  o.seed = 5;
  return o;
}

}  // namespace

TEST_CASE("vit and pool learn a synthetic IDX task to high accuracy in seconds") {
  fs::path dir = write_task("learn");
  ImageSet train = load_mnist(dir, "train"), test = load_mnist(dir, "test");
  for (std::string arch : {"vit", "pool"}) {
    CAPTURE(arch);
    auto model = make_mnist_model(tiny(arch), 3);
    double before = evaluate_mnist(*model, test).accuracy();
    MnistTrainOptions o = quick(arch == "vit" ? 8 : 12);
    if (arch == "pool") o.lr = 1e-2f;  // the small pooling model needs larger steps
    TrainResult r = train_mnist(*model, train, test, o);
    REQUIRE(r.epochs.size() == static_cast<size_t>(o.epochs));
    CHECK(before < 0.5);
    CHECK(r.epochs.back().eval.get("accuracy") >= 0.95);
    CHECK(r.epochs.back().train_loss < r.epochs.front().train_loss);
    MnistEvalResult e = evaluate_mnist(*model, test);
    CHECK(e.accuracy() == doctest::Approx(r.epochs.back().eval.get("accuracy")));
    CHECK(e.get("accuracy") == e.accuracy());
    long total = 0;
    for (auto& row : e.confusion)
      for (long v : row) total += v;
    CHECK(total == 200);
  }
}

TEST_CASE("resume from an epoch checkpoint gives exactly the parameters of an uninterrupted run") {
  fs::path dir = write_task("resume");
  ImageSet train = load_mnist(dir, "train"), test;
  MnistTrainOptions o = quick(3);
  o.shift = 1;  // augmentation must resume deterministically too
  o.checkpoint = dir / "ckpt.safetensors";
  auto a = make_mnist_model(tiny(), 11);
  Callbacks cb;
  cb.on_epoch = [&](const EpochInfo& e) {
    if (e.epoch == 0) fs::copy_file(o.checkpoint, dir / "after1.safetensors");
  };
  train_mnist(*a, train, test, o, cb);

  auto b = make_mnist_model(tiny(), 11);
  MnistTrainOptions ro = o;
  ro.checkpoint = dir / "ckpt2.safetensors";
  ro.resume = dir / "after1.safetensors";
  int started = -1;
  Callbacks rcb;
  rcb.on_start = [&](int first, long) { started = first; };
  TrainResult rr = train_mnist(*b, train, test, ro, rcb);
  CHECK(started == 1);
  CHECK(rr.epochs.size() == 3);  // history carried over from the checkpoint
  const auto& pa = a->params().params();
  const auto& pb = b->params().params();
  REQUIRE(pa.size() == pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    CAPTURE(pa[i]->name);
    CHECK((pa[i]->value.array() == pb[i]->value.array()).all());
  }
  // A checkpoint made with other options is refused.
  MnistTrainOptions other = ro;
  other.lr = 1e-2f;
  auto c = make_mnist_model(tiny(), 11);
  CHECK_THROWS_WITH_AS(train_mnist(*c, train, test, other), doctest::Contains("other options"), InputError);
}

TEST_CASE("a NaN loss stops training and keeps the last good checkpoint") {
  fs::path dir = write_task("nan");
  ImageSet train = load_mnist(dir, "train"), test;
  MnistTrainOptions o = quick(2);
  o.checkpoint = dir / "ckpt.safetensors";
  o.max_steps = 19;  // exactly one epoch of 600/32 -> 19 steps
  auto a = make_mnist_model(tiny(), 1);
  train_mnist(*a, train, test, o);
  std::string good = test::slurp(o.checkpoint);
  REQUIRE(!good.empty());
  ImageSet bad = train;
  for (int i = 0; i < bad.count; i += 7) bad.pixels[static_cast<size_t>(i) * 64] = std::numeric_limits<float>::quiet_NaN();
  MnistTrainOptions r = quick(2);
  r.checkpoint = o.checkpoint;
  r.resume = dir / "resume.safetensors";
  fs::copy_file(o.checkpoint, r.resume);
  auto b = make_mnist_model(tiny(), 1);
  CHECK_THROWS_WITH_AS(train_mnist(*b, bad, test, r), doctest::Contains("loss became nan at epoch 2"),
                       TrainingDiverged);
  CHECK(test::slurp(o.checkpoint) == good);
}

TEST_CASE("records hold every layer's attention, gradients, image, tokens and metadata") {
  fs::path dir = write_task("record");
  ImageSet test = load_mnist(dir, "test");
  MnistConfig cfg = tiny();
  auto m = make_mnist_model(cfg, 2);
  save_mnist_model(dir / "m.safetensors", *m);
  auto loaded = load_mnist_model(dir / "m.safetensors");
  CHECK(loaded->config().to_json() == cfg.to_json());
  auto recs = record_mnist(*loaded, test, {0, 7, 42}, "tiny");
  REQUIRE(recs.size() == 3);
  save_records(dir / "r.safetensors", recs);
  auto back = load_records(dir / "r.safetensors");
  REQUIRE(back.size() == 3);
  const auto& r = back[1];
  r.validate("r");
  REQUIRE(r.tensors.size() == 2);
  CHECK(r.tensors[0].name == "vit.layer0.self");
  CHECK(r.tensors[1].name == "vit.layer1.self");
  CHECK(r.tensors[1].heads == 2);
  CHECK(r.tensors[1].queries == 17);
  CHECK(r.tensors[1].keys == 17);
  REQUIRE(r.gradients.size() == 2);
  CHECK(r.gradients[1].name == "vit.layer1.self");
  REQUIRE(r.relevance.size() == 2);   // the LRP relevance of each map (test_relevance checks its values)
  CHECK(r.relevance[1].name == "vit.layer1.self");
  CHECK(r.metadata.at("explained") == r.metadata.at("prediction"));
  CHECK(r.gradients[1].queries == 17);
  float row = 0;
  for (int k = 0; k < 17; ++k) row += r.tensors[0].at(1, 5, k);
  CHECK(row == doctest::Approx(1));
  REQUIRE(r.axis_tokens("tokens"));
  CHECK(r.axis_tokens("tokens")->size() == 17);
  CHECK(r.axis_tokens("tokens")->front() == "CLS");
  CHECK(r.axis_tokens("tokens")->at(1) == "p0_0");
  REQUIRE(r.image);
  CHECK(r.image->height == 8);
  CHECK(r.image->patch_rows == 4);
  CHECK(r.image->prefix_tokens == 1);
  CHECK(r.image->pixels[3] == doctest::Approx(test.image(7)[3]));
  CHECK(r.metadata.at("label") == std::to_string(test.labels[7]));
  CHECK(r.metadata.at("index") == "7");
  CHECK(r.metadata.at("model") == "tiny");
  float p = std::stof(r.metadata.at("probability"));
  CHECK(p > 0.f);
  CHECK(p <= 1.f);
  // Every saliency method works on the recorded file, on the 4x4 patch grid.
  for (auto method : {SaliencyMethod::Cls, SaliencyMethod::Rollout, SaliencyMethod::Flow, SaliencyMethod::GradRollout,
                      SaliencyMethod::Chefer}) {
    SaliencyOptions so;
    so.method = method;
    Mat s = patch_saliency(r, so, "r");
    CHECK(s.rows() == 4);
    CHECK(s.allFinite());
  }
  CHECK_THROWS_AS(record_mnist(*loaded, test, {200}), UsageError);
  // pool records: one [1, 1, P] tensor, no prefix token
  auto pool = make_mnist_model(tiny("pool"), 2);
  auto pr = record_mnist(*pool, test, {3});
  REQUIRE(pr[0].tensors.size() == 1);
  CHECK(pr[0].tensors[0].name == "pool");
  CHECK(pr[0].tensors[0].keys == 16);
  CHECK(pr[0].image->prefix_tokens == 0);
  pr[0].validate("pool");
}


TEST_CASE("example selection: the first N (of a class), or the first N misclassified") {
  fs::path dir = write_task("select");
  ImageSet test = load_mnist(dir, "test");
  CHECK(select_examples(test, {.first = 3}) == std::vector<int>{0, 1, 2});
  std::vector<int> of2;
  for (int i = 0; i < test.count && of2.size() < 4; ++i)
    if (test.labels[i] == 2) of2.push_back(i);
  REQUIRE(of2.size() == 4);
  CHECK(select_examples(test, {.first = 4, .klass = 2}) == of2);
  std::vector<int> pred(test.labels.begin(), test.labels.end());
  pred[5] = (pred[5] + 1) % 4;
  pred[9] = (pred[9] + 1) % 4;
  pred[11] = (pred[11] + 1) % 4;
  CHECK(select_examples(test, {.misclassified = 2}, pred) == std::vector<int>{5, 9});
  CHECK(select_examples(test, {.misclassified = 9}, pred) == std::vector<int>{5, 9, 11});
  std::vector<int> wrong_of_class;   // of 5, 9, 11: those with image 9's label
  for (int i : {5, 9, 11})
    if (test.labels[i] == test.labels[9]) wrong_of_class.push_back(i);
  CHECK(select_examples(test, {.misclassified = 9, .klass = test.labels[9]}, pred) == wrong_of_class);
  CHECK_THROWS_AS(select_examples(test, {.misclassified = 2}), std::invalid_argument);
  std::vector<int> right(test.labels.begin(), test.labels.end());
  CHECK_THROWS_WITH_AS(select_examples(test, {.misclassified = 2}, right), "no images match the selection", UsageError);
}
