// Tests of the text classifiers: a keyword task learnt with attention on the keyword, every pooling
// score, the transformer, model files, bitwise resume, recording, and the CLI end to end.
#include <attnviz/analysis/saliency.hpp>
#include <attnviz/error.hpp>
#include <attnviz/models/textcls.hpp>
#include <attnviz/train/tasks.hpp>
#include <attnviz/record/record.hpp>
#include <attnviz/io/safetensors.hpp>

#include <doctest/doctest.h>

#include "test_util.hpp"

using namespace attnviz;
using namespace attnviz::models;
using namespace attnviz::train;

namespace {

const char* kFill[] = {"the", "a", "one", "that", "this", "my", "your", "old", "new", "big", "small",
                       "red", "blue", "some", "every", "was", "is", "here", "there", "then"};
const char* kKeys[] = {"compiler", "pizza", "judge"};
const char* kLabels[] = {"computers", "food", "law"};

// n sentences of 5..9 filler words with exactly one keyword, which alone decides the label;
// keyword_pos[i] is its token index.
TextDataset keyword_data(int n, std::uint64_t seed, std::vector<int>* keyword_pos = nullptr) {
  nn::Rng rng(seed);
  TextDataset ds;
  for (const char* l : kLabels) ds.labels.push_back(l);
  for (int i = 0; i < n; ++i) {
    int c = i % 3, len = 5 + rng.below(5), pos = rng.below(len);
    std::string t;
    for (int k = 0; k < len; ++k) t += std::string(k ? " " : "") + (k == pos ? kKeys[c] : kFill[rng.below(20)]);
    ds.texts.push_back(t);
    ds.y.push_back(c);
    if (keyword_pos) keyword_pos->push_back(pos);
  }
  return ds;
}

int argmax(const AttentionTensor& t) {
  int best = 0;
  for (int k = 1; k < t.keys; ++k)
    if (t.at(0, 0, k) > t.at(0, 0, best)) best = k;
  return best;
}

std::unique_ptr<TextClassifier> small_model(const std::string& arch, const std::string& score, const TextDataset& train,
                                            std::uint64_t seed = 1) {
  TextClsConfig cfg;
  cfg.arch = arch;
  cfg.score = score;
  cfg.embed = 16;
  cfg.hidden = 16;
  cfg.attn_hidden = 16;
  cfg.dim = 32;
  cfg.layers = 1;
  cfg.heads = 2;
  cfg.mlp = 32;
  cfg.dropout = 0.1f;
  cfg.word_dropout = 0.f;
  return make_textcls_model(cfg, build_text_vocab(train.texts, 1), train.labels, seed);
}

TextTrainOptions fast_training(int epochs) {
  TextTrainOptions o;
  o.epochs = epochs;
  o.batch = 16;
  o.lr = 1e-2f;
  o.min_lr = 1e-3f;
  o.warmup_epochs = 0.f;
  return o;
}

}  // namespace

TEST_CASE("BiGRU + attention pooling learns a keyword task and attends to the keyword (every score)") {
  TextDataset train = keyword_data(240, 1);
  std::vector<int> pos;
  TextDataset test = keyword_data(60, 2, &pos);
  for (std::string score : {"additive", "general", "scaled-dot"}) {
    CAPTURE(score);
    auto m = small_model("bigru", score, train);
    train_textcls(*m, train, {}, fast_training(20));
    auto r = evaluate_textcls(*m, test);
    CHECK(r.classes.accuracy >= 0.98);
    std::vector<TextToRecord> items;
    for (size_t i = 0; i < test.size(); ++i) items.push_back({test.texts[i], test.y[i], "test"});
    auto recs = record_textcls(*m, items);
    REQUIRE(recs.size() == test.size());
    int peaks = 0;
    double mass = 0;
    for (size_t i = 0; i < recs.size(); ++i) {
      const AttentionTensor* p = recs[i].find("pool");
      REQUIRE(p);
      REQUIRE(p->keys == static_cast<int>(recs[i].tokens.at("tokens").size()));
      peaks += argmax(*p) == pos[i];
      mass += p->at(0, 0, pos[i]);
    }
    if (score == "scaled-dot") {
      // One learned query scored by a scaled dot product learns flatter weights (the bidirectional
      // states already carry the keyword everywhere): the keyword still wins most sentences and
      // gets well above the uniform share (1/9 .. 1/5, about 0.15 on average).
      CHECK(peaks >= static_cast<int>(0.6 * recs.size()));
      CHECK(mass / recs.size() > 0.2);
    } else {
      CHECK(peaks >= static_cast<int>(0.9 * recs.size()));
      CHECK(mass / recs.size() > 0.5);
    }
  }
}

TEST_CASE("transformer with a CLS token learns the keyword task; records hold every layer and head") {
  TextDataset train = keyword_data(240, 3);
  TextDataset test = keyword_data(60, 4);
  auto m = small_model("transformer", "", train);
  train_textcls(*m, train, {}, fast_training(8));
  CHECK(evaluate_textcls(*m, test).classes.accuracy >= 0.95);
  auto recs = record_textcls(*m, {{"my old compiler is here", 0, "text"}});
  const auto& r = recs.at(0);
  const AttentionTensor* l0 = r.find("encoder.layer0.self");
  REQUIRE(l0);
  CHECK(l0->heads == 2);
  CHECK(l0->queries == 6);   // [CLS] + 5 words
  CHECK(r.tokens.at("tokens_cls").front() == "[CLS]");
  const AttentionTensor* p = r.find("pool");
  REQUIRE(p);
  double s = 0;
  for (float v : p->data) s += v;
  CHECK(s == doctest::Approx(1.0).epsilon(1e-4));
  CHECK(r.metadata.at("prediction") == "computers");
  CHECK(r.metadata.at("correct") == "true");
}

TEST_CASE("model file round trip, and checkpoint + resume is bitwise identical to one run") {
  TextDataset train = keyword_data(90, 5);
  auto dir = test::temp_dir("textcls_resume");
  auto a = small_model("bigru", "additive", train, 7);
  train_textcls(*a, train, {}, fast_training(2));

  auto b = small_model("bigru", "additive", train, 7);
  auto o1 = fast_training(2);
  o1.checkpoint = dir / "ck.safetensors";
  // Stop after the first epoch: train with epochs = 2 but throw from the epoch callback.
  Callbacks cb;
  cb.on_epoch = [](const EpochInfo&) { throw std::runtime_error("stop"); };
  CHECK_THROWS_AS(train_textcls(*b, train, {}, o1, cb), std::runtime_error);
  auto loaded = load_textcls_model(dir / "ck.safetensors");
  CHECK(loaded.metadata.at("train.epochs_done") == "1");
  auto o2 = fast_training(2);
  o2.resume = dir / "ck.safetensors";
  int first = -1;
  Callbacks cb2;
  cb2.on_start = [&](int f, long) { first = f; };
  train_textcls(*loaded.model, train, {}, o2, cb2);
  CHECK(first == 1);
  const auto& pa = a->params().params();
  const auto& pb = loaded.model->params().params();
  REQUIRE(pa.size() == pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    CAPTURE(pa[i]->name);
    CHECK(pa[i]->value == pb[i]->value);
  }
  // A file that is not a textcls model is an InputError naming it.
  StFile junk;
  junk.metadata["attnviz.model"] = "mnist";
  save_safetensors(dir / "junk.safetensors", junk);
  CHECK_THROWS_WITH_AS(load_textcls_model(dir / "junk.safetensors"), doctest::Contains("junk.safetensors"), InputError);
}

TEST_CASE("CLI: corpus, train, eval (with baseline), record and render text on a TSV task") {
  auto dir = test::temp_dir("textcls_cli");
  TextDataset ds = keyword_data(150, 9);
  write_text_tsv(dir / "kw.tsv", ds);
  auto model = (dir / "m.safetensors").string();
  auto r = test::run_cli("--quiet train textcls --data '" + (dir / "kw.tsv").string() +
                         "' --embed 16 --hidden 16 --epochs 4 --lr 0.01 --min-count 1 -o '" + model + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(r.out.find("test accuracy") != std::string::npos);
  r = test::run_cli("eval textcls '" + model + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(r.out.find("bag-of-words logistic regression") != std::string::npos);
  CHECK(r.out.find("macro-F1") != std::string::npos);
  auto rec = (dir / "r.safetensors").string();
  r = test::run_cli("record textcls '" + model + "' --from-test 3 --misclassified 2 --text 'the judge was here' -o '" +
                    rec + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  auto recs = load_records(rec);
  REQUIRE(recs.size() >= 4);
  CHECK(recs[0].metadata.at("source") == "text");
  CHECK(recs[0].find("pool")->key_axis == "tokens");
  for (const char* ext : {"png", "svg", "pdf", "html"}) {
    auto out = (dir / (std::string("t.") + ext)).string();
    r = test::run_cli("render text '" + rec + "' -o '" + out + "'");
    CHECK_MESSAGE(r.code == 0, r.out);
    CHECK(std::filesystem::file_size(out) > 500);
  }
  // Errors: no input selection (usage, 1), a missing model (input, 2), a bad extension (1).
  CHECK(test::run_cli("record textcls '" + model + "' -o '" + (dir / "x.safetensors").string() + "'").code == 1);
  CHECK(test::run_cli("eval textcls '" + (dir / "missing.safetensors").string() + "'").code == 2);
  CHECK(test::run_cli("render text '" + rec + "' -o '" + (dir / "t.bmp").string() + "'").code == 1);
  CHECK_FALSE(std::filesystem::exists(dir / "t.bmp"));
  // corpus textcls writes the TSV (from --data here; the default is the fortunes package).
  r = test::run_cli("corpus textcls --data '" + (dir / "kw.tsv").string() + "' --part test -o '" +
                    (dir / "test.tsv").string() + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(read_text_tsv(dir / "test.tsv").size() == 30);
}

TEST_CASE("data.* metadata of a corrupt model file: the message names the file and the key, never a bare 'stoi'") {
  using attnviz::models::TextDataSource;
  const auto good = TextDataSource{}.to_metadata();
  const TextDataSource back = TextDataSource::from_metadata(good, "m.safetensors");
  CHECK(back.to_metadata() == good);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"data.min_words", "abc"}, {"data.max_words", "99999999999999999999"}, {"data.max_per_class", "-4"},
      {"data.split_seed", "1.5"}, {"data.test_fraction", "2"}, {"data.categories", "[1,2]"},
      {"data.categories", "{"}};
  for (const auto& [key, value] : bad) {
    auto meta = good;
    meta[key] = value;
    std::string msg;
    try {
      TextDataSource::from_metadata(meta, "m.safetensors");
    } catch (const attnviz::InputError& e) {
      msg = e.what();
    }
    CHECK_MESSAGE(msg.rfind("m.safetensors: ", 0) == 0, key << "=" << value << ": " << msg);
    CHECK_MESSAGE(msg.find(key) != std::string::npos, msg);
    CHECK(msg.find("stoi") == std::string::npos);
  }
}

TEST_CASE("transformer classifier: Chefer relevance is conserved and recorded with --record relevance") {
  TextDataset train = keyword_data(240, 3);
  auto m = small_model("transformer", "", train);
  train_textcls(*m, train, {}, fast_training(4));
  // Without a forward with a sink there is nothing to explain.
  CHECK_THROWS_AS(m->explain({0}), std::logic_error);
  AttentionCollector sink;
  const std::vector<std::string> texts = {"my old compiler is here", "the judge", "a court and a compiler today"};
  m->forward(m->batch(texts), nullptr, &sink);
  REQUIRE(m->explain({0, 1, 0}));
  // Conservation: per text, the embeddings' relevance sums to the head's (lrp_linear of the one-hot
  // seed, 1 here: every head column has inputs of both signs); padding rows receive none.
  const Mat rin = m->input_relevance();
  const int T1 = 7;   // [CLS] + the longest text (6 words)
  REQUIRE(rin.rows() == 3 * T1);
  for (int b = 0; b < 3; ++b) CHECK(rin.middleRows(b * T1, T1).cast<double>().sum() == doctest::Approx(1.0).epsilon(1e-4));
  CHECK(rin.middleRows(T1 + 3, T1 - 3).cwiseAbs().maxCoeff() == doctest::Approx(0.0));   // "the judge": rows 3..5 pad
  // Linear in the seed: the attention maps' relevance of text 0 for class 0 sums (over the layer)
  // to the same as in a batch of its own.
  auto rel = m->attention_relevance(0);
  auto grads = m->attention_grads(0);
  REQUIRE(rel.size() == 1);
  REQUIRE(grads.size() == 1);
  CHECK(rel[0].name == "encoder.layer0.self");
  CHECK(rel[0].queries == 6);
  CHECK(m->attention_relevance(1)[0].queries == 3);
  m->forward(m->batch({texts[0]}), nullptr, &sink);
  REQUIRE(m->explain({0}));
  auto rel1 = m->attention_relevance(0), grads1 = m->attention_grads(0);
  for (size_t i = 0; i < rel[0].data.size(); ++i) {
    CHECK(rel1[0].data[i] == doctest::Approx(rel[0].data[i]).epsilon(1e-4).scale(1e-6));
    CHECK(grads1[0].data[i] == doctest::Approx(grads[0].data[i]).epsilon(1e-4).scale(1e-6));
  }
  auto recs = record_textcls(*m, {{texts[0], 0, "text"}}, {.relevance = true});
  const auto& r = recs.at(0);
  REQUIRE(r.relevance.size() == 1);
  REQUIRE(r.gradients.size() == 1);
  CHECK(r.metadata.at("relevance").find("LRP of logit") == 0);
  SaliencyOptions so;
  so.method = SaliencyMethod::Chefer;
  auto s = token_saliency(r, so);
  REQUIRE(s.size() == 6);
  // The keyword "compiler" (token 3 after [CLS]) carries the most relevance among the words.
  int best = 1;
  for (int k = 2; k < 6; ++k)
    if (s[k] > s[best]) best = k;
  CHECK(best == 3);
  // Without the option: no gradients, no relevance.
  CHECK(record_textcls(*m, {{texts[0], 0, "text"}}).at(0).relevance.empty());
}

TEST_CASE("CLI: record textcls --record relevance on a transformer, render text --method chefer") {
  auto dir = test::temp_dir("textcls_chefer_cli");
  TextDataset ds = keyword_data(150, 9);
  write_text_tsv(dir / "kw.tsv", ds);
  auto model = (dir / "m.safetensors").string();
  auto r = test::run_cli("--quiet train textcls --data '" + (dir / "kw.tsv").string() +
                         "' --arch transformer --dim 16 --layers 2 --heads 2 --epochs 2 --batch 16 --min-count 1 -o '" +
                         model + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  auto rec = (dir / "r.safetensors").string();
  r = test::run_cli("record textcls '" + model + "' --text 'the judge was here' --text 'a compiler' --record relevance -o '" +
                    rec + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  auto recs = load_records(rec);
  REQUIRE(recs.size() == 2);
  for (const auto& x : recs) {
    REQUIRE(x.relevance.size() == 2);   // one per layer, named and shaped as the weights
    REQUIRE(x.gradients.size() == 2);
    const AttentionTensor* w = x.find("encoder.layer1.self");
    REQUIRE(w);
    const AttentionTensor* rl = x.find_relevance("encoder.layer1.self");
    REQUIRE(rl);
    CHECK(rl->queries == w->queries);
    CHECK(rl->keys == w->keys);
    // Only the [CLS] row of the last layer receives relevance (the head reads [CLS] alone).
    for (int h = 0; h < rl->heads; ++h)
      for (int q = 1; q < rl->queries; ++q)
        for (int k = 0; k < rl->keys; ++k) CHECK(rl->at(h, q, k) == 0.f);
    CHECK(x.metadata.at("relevance").find("LRP of logit " + x.metadata.at("prediction")) == 0);
  }
  CHECK(recs[0].find_relevance("encoder.layer0.self")->queries == 5);   // [CLS] + 4 words
  for (const char* m : {"chefer", "grad-rollout", "rollout"}) {
    auto out = (dir / (std::string("t_") + m + ".png")).string();
    r = test::run_cli("render text '" + rec + "' --method " + m + " -o '" + out + "'");
    CHECK_MESSAGE(r.code == 0, r.out);
    CHECK(std::filesystem::file_size(out) > 500);
  }
  {   // the legend says what shades the words
    auto html = (dir / "t.html").string();
    r = test::run_cli("render text '" + rec + "' --method chefer -o '" + html + "'");
    REQUIRE_MESSAGE(r.code == 0, r.out);
    const std::string page = test::slurp(html);
    CHECK(page.find("chefer saliency / largest in its sentence") != std::string::npos);
    CHECK(page.find("attention weight / largest") == std::string::npos);
  }
  // Without --record relevance, chefer names what is missing (input error, 2); an unknown method is
  // a usage error (1); --record relevance on the BiGRU is refused (1).
  auto plain = (dir / "p.safetensors").string();
  REQUIRE(test::run_cli("record textcls '" + model + "' --text 'a compiler' -o '" + plain + "'").code == 0);
  CHECK(load_records(plain)[0].relevance.empty());
  r = test::run_cli("render text '" + plain + "' --method chefer -o '" + (dir / "x.png").string() + "'");
  CHECK(r.code == 2);
  CHECK(r.out.find("relevance") != std::string::npos);
  CHECK(test::run_cli("render text '" + rec + "' --method magic -o '" + (dir / "y.png").string() + "'").code == 1);
  auto gru = (dir / "g.safetensors").string();
  REQUIRE(test::run_cli("--quiet train textcls --data '" + (dir / "kw.tsv").string() +
                        "' --embed 8 --hidden 8 --epochs 1 --min-count 1 -o '" + gru + "'").code == 0);
  CHECK(test::run_cli("record textcls '" + gru + "' --text 'a compiler' --record relevance -o '" +
                      (dir / "z.safetensors").string() + "'").code == 1);
}
