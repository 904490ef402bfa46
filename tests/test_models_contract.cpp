// The model layer's contract: one model file for every family (round trip, tensor checks, the
// previous release's formats), forward with and without an attention sink, named metrics, and the
// one trainer (mid-epoch checkpoint + resume bitwise identical, changed options refused by name).
#include <attnviz/error.hpp>
#include <attnviz/io/safetensors.hpp>
#include <attnviz/models/mnist.hpp>
#include <attnviz/models/model_file.hpp>
#include <attnviz/models/textcls.hpp>
#include <attnviz/models/translator.hpp>
#include <attnviz/train/tasks.hpp>

#include "test_util.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <omp.h>

using namespace attnviz;
using namespace attnviz::models;
namespace train = attnviz::train;
namespace fs = std::filesystem;

namespace {

MnistConfig tiny_mnist(const std::string& arch) {
  MnistConfig c;
  c.arch = arch;
  c.image = 8;
  c.patch = 2;
  c.dim = 8;
  c.depth = 1;
  c.heads = 2;
  c.mlp = 8;
  c.classes = 4;
  return c;
}

ImageSet tiny_images(int count, std::uint64_t seed) {
  nn::Rng rng(seed);
  ImageSet s;
  s.count = count, s.rows = 8, s.cols = 8;
  s.pixels.resize(static_cast<size_t>(count) * 64);
  for (auto& p : s.pixels) p = rng.uniform();
  for (int i = 0; i < count; ++i) s.labels.push_back(static_cast<std::uint8_t>(rng.below(4)));
  return s;
}

TextDataset tiny_texts() {
  TextDataset d;
  d.labels = {"a", "b"};
  const char* words[] = {"red apple pie", "blue sky high", "apple tart sweet", "sky cloud grey", "pie crust",
                         "grey cloud rain", "sweet apple", "high blue"};
  for (int i = 0; i < 8; ++i) d.texts.push_back(words[i]), d.y.push_back(i % 2);
  return d;
}

std::unique_ptr<TextClassifier> tiny_textcls(const std::string& arch, const TextDataset& d) {
  TextClsConfig c;
  c.arch = arch;
  c.embed = c.hidden = c.attn_hidden = 6;
  c.dim = 8, c.layers = 1, c.heads = 2, c.mlp = 8;
  return make_textcls_model(c, build_text_vocab(d.texts, 1), d.labels, 3);
}

std::unique_ptr<Translator> tiny_translator(const std::string& arch, nn::Score score = nn::Score::Additive) {
  TranslatorConfig c;
  c.arch = arch;
  c.attention = score;
  c.embed = c.hidden = 6;
  c.dim = 8, c.heads = 2, c.layers = 1, c.ff = 8, c.max_len = 20;
  auto v = Vocabulary::build({{"a", "b", "c"}});
  auto m = make_translator(c, v, v);
  m->init(2);
  return m;
}

void check_same_params(const Model& a, const Model& b) {
  const auto& pa = a.params().params();
  const auto& pb = b.params().params();
  REQUIRE(pa.size() == pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    CAPTURE(pa[i]->name);
    CHECK(pa[i]->name == pb[i]->name);
    CHECK((pa[i]->value.array() == pb[i]->value.array()).all());
  }
}

}  // namespace

TEST_CASE("one model file: every family round-trips through save_model / load_model") {
  auto dir = test::temp_dir("model_file_roundtrip");
  auto d = tiny_texts();
  std::vector<std::unique_ptr<Model>> models;
  models.push_back(make_mnist_model(tiny_mnist("vit"), 1));
  models.push_back(make_mnist_model(tiny_mnist("pool"), 1));
  models.push_back(tiny_textcls("bigru", d));
  models.push_back(tiny_textcls("transformer", d));
  models.push_back(tiny_translator("rnn"));
  models.push_back(tiny_translator("transformer"));
  for (size_t i = 0; i < models.size(); ++i) {
    const Model& m = *models[i];
    CAPTURE(m.kind());
    const fs::path p = dir / ("m" + std::to_string(i) + ".safetensors");
    save_model(p, m, std::map<std::string, std::string>{{"note", "x"}});
    StFile f = load_safetensors(p);
    CHECK(f.metadata.at("attnviz.model") == m.kind());
    CHECK(f.metadata.at("attnviz.config") == m.config_json());
    CHECK(f.metadata.at("note") == "x");
    LoadedModel back = load_model(p);
    CHECK(back.format == "attnviz");
    CHECK(back.model->kind() == m.kind());
    CHECK(back.model->config_json() == m.config_json());
    CHECK(back.model->file_metadata() == m.file_metadata());
    check_same_params(m, *back.model);
  }
}

TEST_CASE("one model file: missing, extra and mis-shaped tensors are named with expected and found") {
  auto dir = test::temp_dir("model_file_check");
  auto m = make_mnist_model(tiny_mnist("vit"), 1);
  save_model(dir / "ok.safetensors", *m);
  StFile f = load_safetensors(dir / "ok.safetensors");
  {
    StFile g = f;
    g.tensors.erase(g.tensors.begin());
    save_safetensors(dir / "missing.safetensors", g);
    CHECK_THROWS_WITH_AS(load_model(dir / "missing.safetensors"),
                         doctest::Contains(("tensor '" + f.tensors.front().name + "' is missing (expected [").c_str()),
                         InputError);
  }
  {
    StFile g = f;
    StTensor t;
    t.name = "vit.layer9.attn.wq.weight";
    t.dtype = "F32";
    t.shape = {2, 3};
    t.data.assign(6, 0.f);
    g.tensors.push_back(t);
    save_safetensors(dir / "extra.safetensors", g);
    CHECK_THROWS_WITH_AS(load_model(dir / "extra.safetensors"),
                         doctest::Contains("unexpected tensor 'vit.layer9.attn.wq.weight' [2, 3]"), InputError);
  }
  {
    StFile g = f;
    StTensor* head = nullptr;
    for (auto& t : g.tensors)
      if (t.name == "head.weight") head = &t;
    REQUIRE(head);
    head->shape = {4, 8};   // transposed: same element count, wrong shape
    save_safetensors(dir / "shape.safetensors", g);
    CHECK_THROWS_WITH_AS(load_model(dir / "shape.safetensors"),
                         doctest::Contains("tensor 'head.weight': expected shape [8, 4], found [4, 8]"), InputError);
  }
  {
    StFile g = f;
    g.metadata["attnviz.model"] = "gizmo";
    save_safetensors(dir / "kind.safetensors", g);
    CHECK_THROWS_WITH_AS(load_model(dir / "kind.safetensors"), doctest::Contains("model kind 'gizmo'"), InputError);
    g.metadata.erase("attnviz.model");
    save_safetensors(dir / "none.safetensors", g);
    CHECK_THROWS_WITH_AS(load_model(dir / "none.safetensors"), doctest::Contains("not an attnviz model file"), InputError);
  }
  CHECK_THROWS_WITH_AS(load_textcls_model(dir / "ok.safetensors"), doctest::Contains("is a mnist model, not a textcls"),
                       InputError);
}

TEST_CASE("files of the previous release load (mnist, textcls, translate) or are refused naming the format") {
  auto dir = test::temp_dir("model_file_old");
  auto d = tiny_texts();
  // As attnviz 0.1 wrote them: kind + "config" (mnist, textcls), one key per field (translate).
  auto vit = make_mnist_model(tiny_mnist("vit"), 4);
  {
    StFile f;
    vit->params().save_into(f);
    f.metadata = {{"attnviz.model", "mnist"}, {"config", vit->config().to_json()}, {"test_accuracy", "0.5"}};
    save_safetensors(dir / "mnist.safetensors", f);
    LoadedModel lm = load_model(dir / "mnist.safetensors");
    CHECK(lm.format == "mnist 0.1");
    check_same_params(*vit, *lm.model);
  }
  auto tc = tiny_textcls("transformer", d);
  {
    StFile f;
    tc->params().save_into(f);
    StTensor opt;   // old checkpoints carried the optimizer state in the same file
    opt.name = "optim.t";
    opt.dtype = "F32";
    opt.shape = {1};
    opt.data = {3};
    f.tensors.push_back(opt);
    f.metadata = {{"attnviz.model", "textcls"}, {"config", tc->config().to_json()}, {"vocab", tc->vocab().to_json()},
                  {"labels", nlohmann::json(tc->labels()).dump()}, {"train.epochs_done", "2"}};
    save_safetensors(dir / "textcls.safetensors", f);
    LoadedModel lm = load_model(dir / "textcls.safetensors");
    CHECK(lm.format == "textcls 0.1");
    check_same_params(*tc, *lm.model);
    CHECK(load_textcls_model(dir / "textcls.safetensors").metadata.at("train.epochs_done") == "2");
  }
  for (std::string arch : {"rnn", "transformer"}) {
    CAPTURE(arch);
    auto tr = tiny_translator(arch, nn::Score::General);
    StFile f;
    tr->params().save_into(f);
    const auto& c = tr->config;
    f.metadata = {{"attnviz.model", "translate"}, {"model", tr->name()}, {"arch", c.arch},
                  {"attention", tr->attention_kind()}, {"embed", "6"}, {"hidden", "6"}, {"query", "current"},
                  {"dim", "8"}, {"heads", "2"}, {"layers", "1"}, {"ff", "8"}, {"max_len", "20"},
                  {"dropout", "0.000000"}, {"coverage", "0.000000"}, {"lowercase", "0"},
                  {"split_punctuation", "1"}, {"pretokenized", "0"}, {"src_vocab", tr->src_vocab.to_json()},
                  {"tgt_vocab", tr->tgt_vocab.to_json()}};
    save_safetensors(dir / "translate.safetensors", f);
    LoadedModel lm = load_model(dir / "translate.safetensors");
    CHECK(lm.format == "translate 0.1");
    CHECK(lm.model->config_json() == tr->config_json());
    check_same_params(*tr, *lm.model);
    // an old file missing a field is refused, naming the format and the field
    f.metadata.erase("ff");
    save_safetensors(dir / "translate_bad.safetensors", f);
    CHECK_THROWS_WITH_AS(load_model(dir / "translate_bad.safetensors"),
                         doctest::Contains("old translate model file: metadata 'ff' missing"), InputError);
  }
  StFile other;
  other.metadata = {{"attnviz.model", "lm"}};
  save_safetensors(dir / "unknown_old.safetensors", other);
  CHECK_THROWS_WITH_AS(load_model(dir / "unknown_old.safetensors"), doctest::Contains("retrain"), InputError);
}

TEST_CASE("forward computes attention weights only for a sink; a sink never changes the numbers") {
  auto d = tiny_texts();
  auto tf = tiny_textcls("transformer", d);
  TextBatch b = tf->batch({"red apple pie", "sky"});
  Mat plain = tf->forward(b);
  CHECK(tf->attention(0).empty());   // no sink: the weights pass was skipped
  AttentionCollector sink;
  Mat seen = tf->forward(b, nullptr, &sink);
  CHECK((plain.array() == seen.array()).all());
  REQUIRE(sink.names == std::vector<std::string>{"encoder.layer0.self"});
  const auto& w = sink.w.at("encoder.layer0.self");
  CHECK(w.B == 2);
  CHECK(w.H == 2);
  CHECK(w.Nq == 4);   // [CLS] + 3 words
  CHECK(tf->attention(0).size() == 2);   // pool + layer 0

  auto vit = make_mnist_model(tiny_mnist("vit"), 1);
  ImageSet im = tiny_images(3, 5);
  Mat x = image_batch(im, {0, 1, 2});
  Mat a = vit->forward(x);
  AttentionCollector vs(true);
  Mat b2 = vit->forward(x, &vs);
  CHECK((a.array() == b2.array()).all());
  REQUIRE(vs.names == std::vector<std::string>{"vit.layer0.self"});
  vit->backward(Mat::Ones(3, 4), &vs);
  REQUIRE(vs.dw.count("vit.layer0.self"));
  CHECK(vs.dw.at("vit.layer0.self").data.size() == vs.w.at("vit.layer0.self").data.size());

  for (std::string arch : {"rnn", "transformer"}) {
    CAPTURE(arch);
    auto tr = tiny_translator(arch);
    Example ex{{4, 5, 6}, {5, 4}, {}};
    AttentionCollector ts;
    Mat l1 = tr->forward({&ex});
    Mat l2 = tr->forward({&ex}, &ts);
    CHECK((l1.array() == l2.array()).all());
    CHECK(l1.rows() == 3);   // 2 target tokens + <eos>
    REQUIRE(ts.w.count("decoder.layer0.cross"));
    CHECK(ts.w.at("decoder.layer0.cross").Nk == 4);   // 3 source tokens + <eos>
    AttentionRecord rec = tr->record(ex.src, ex.tgt);
    CHECK(rec.tensors.size() == (arch == "rnn" ? 1u : 3u));
    CHECK(rec.tensors.back().name == "decoder.layer0.cross");
  }
}

TEST_CASE("evaluation results carry named metrics") {
  auto vit = make_mnist_model(tiny_mnist("vit"), 1);
  ImageSet im = tiny_images(10, 5);
  MnistEvalResult r = evaluate_mnist(*vit, im);
  CHECK(r.get("accuracy") == r.accuracy());
  CHECK(r.has("loss"));
  CHECK(r.metrics.front().first == "accuracy");
  CHECK_THROWS_AS(r.get("bleu"), std::out_of_range);
  auto d = tiny_texts();
  auto tc = tiny_textcls("bigru", d);
  TextEvalResult t = evaluate_textcls(*tc, d);
  CHECK(t.get("accuracy") == t.classes.accuracy);
  CHECK(t.get("macro_f1") == t.classes.macro_f1);
}

TEST_CASE("trainer: a checkpoint in the middle of an epoch resumes bitwise identically") {
  auto dir = test::temp_dir("trainer_resume");
  ImageSet train = tiny_images(100, 9), none;
  train::MnistTrainOptions o;
  o.epochs = 2;
  o.batch = 16;   // 7 steps per epoch
  o.seed = 4;
  auto a = make_mnist_model(tiny_mnist("vit"), 2);
  train::train_mnist(*a, train, none, o);

  // The same run, stopped after step 10 (mid epoch 2) with a checkpoint every 5 steps.
  struct Stop {};
  auto b = make_mnist_model(tiny_mnist("vit"), 2);
  train::MnistTrainOptions ob = o;
  ob.checkpoint = dir / "ck.safetensors";
  ob.checkpoint_every = 5;
  train::Callbacks cb;
  cb.on_step = [](const train::StepInfo& s) {
    if (s.global_step == 11) throw Stop{};
  };
  CHECK_THROWS_AS(train::train_mnist(*b, train, none, ob, cb), Stop);
  CHECK(load_safetensors(ob.checkpoint).metadata.count("train.state"));

  auto c = make_mnist_model(tiny_mnist("vit"), 99);   // other init: everything comes from the checkpoint
  train::MnistTrainOptions oc = o;
  oc.resume = ob.checkpoint;
  int first_epoch = -1;
  long first_step = -1;
  train::Callbacks rcb;
  rcb.on_start = [&](int e, long s) { first_epoch = e, first_step = s; };
  auto res = train::train_mnist(*c, train, none, oc, rcb);
  CHECK(first_epoch == 1);
  CHECK(first_step == 3);   // global step 10 = epoch 2, step 3
  CHECK(res.steps == 4);
  CHECK(res.epochs.size() == 2);
  check_same_params(*a, *c);
}

TEST_CASE("trainer: resuming with another option is refused, naming it (--threads, --lr, --attention)") {
  auto dir = test::temp_dir("trainer_refuse");
  ImageSet train = tiny_images(40, 3), none;
  train::MnistTrainOptions o;
  o.epochs = 2;
  o.batch = 16;
  o.checkpoint = dir / "ck.safetensors";
  o.max_steps = 3;
  auto a = make_mnist_model(tiny_mnist("pool"), 2);
  const int threads = omp_get_max_threads();
  train::train_mnist(*a, train, none, o);
  train::MnistTrainOptions r = o;
  r.max_steps = 0;
  r.checkpoint.clear();
  r.resume = o.checkpoint;
  omp_set_num_threads(threads + 1);
  auto b = make_mnist_model(tiny_mnist("pool"), 2);
  CHECK_THROWS_WITH_AS(train::train_mnist(*b, train, none, r),
                       doctest::Contains(("--threads was " + std::to_string(threads) + " there, " +
                                          std::to_string(threads + 1) + " in this run").c_str()),
                       InputError);
  omp_set_num_threads(threads);
  r.lr = 1e-2f;
  CHECK_THROWS_WITH_AS(train::train_mnist(*b, train, none, r), doctest::Contains("--lr was"), InputError);
  // another model: the config key is named as its option
  auto vit = make_mnist_model(tiny_mnist("vit"), 2);
  r.lr = o.lr;
  CHECK_THROWS_WITH_AS(train::train_mnist(*vit, train, none, r), doctest::Contains("--arch was \"pool\" there"),
                       InputError);

  auto tr = tiny_translator("rnn");
  std::vector<Example> data = {{{4, 5}, {5}}, {{6}, {4, 4}}, {{5, 6, 4}, {6}}};
  train::TranslateTrainOptions t;
  t.epochs = 1;
  t.batch = 2;
  t.checkpoint = dir / "tr.safetensors";
  train::train_translator(*tr, data, t);
  auto dot = tiny_translator("rnn", nn::Score::Dot);
  train::TranslateTrainOptions tr2 = t;
  tr2.epochs = 2;
  tr2.resume = t.checkpoint;
  tr2.checkpoint.clear();
  CHECK_THROWS_WITH_AS(train::train_translator(*dot, data, tr2), doctest::Contains("--attention was \"additive\" there"),
                       InputError);
}
