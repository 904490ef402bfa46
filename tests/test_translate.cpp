// Tests of the translation models: a tiny corpus learned to exact match in seconds (RNN and
// transformer), beam width 1 equals greedy, model file round trip, recording shapes and tokens;
// the coverage penalty and guided alignment (loss by hand, gradients, links to BPE pieces).
#include "gradcheck.hpp"
#include <attnviz/error.hpp>
#include <attnviz/models/mnist.hpp>
#include <attnviz/models/model_file.hpp>
#include <attnviz/models/translator.hpp>
#include <attnviz/train/tasks.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "test_util.hpp"

using namespace attnviz;
using namespace attnviz::models;
namespace train = attnviz::train;
using namespace attnviz::test;

namespace {

std::unique_ptr<Translator> tiny_model(const ParallelCorpus& c, TranslatorConfig cfg) {
  std::vector<std::vector<std::string>> s, t;
  for (const auto& p : c.pairs) s.push_back(p.source), t.push_back(p.target);
  auto m = make_translator(cfg, Vocabulary::build(s), Vocabulary::build(t));
  m->init(3);
  return m;
}

// The gradient of the whole loss (grads), then of one extra term alone (term_grads: its share of
// the gradient, the total minus a run without it) against central differences of term_loss, so a
// wrong gradient of a small term cannot hide in the much larger cross-entropy one. Float rounding
// of the weights limits the differences: the term's tolerance is 3% of its largest gradient entry.
void check_loss_and_term_gradients(const std::string& term, const std::vector<nn::Param*>& params,
                                   const std::vector<Mat>& grads, const std::vector<Mat>& term_grads,
                                   const std::function<double()>& loss, const std::function<double()>& term_loss) {
  REQUIRE(grads.size() == params.size());
  REQUIRE(term_grads.size() == params.size());
  for (size_t k = 0; k < params.size(); ++k) {
    REQUIRE(params[k] != nullptr);
    auto r = nn::check_gradient(params[k]->name, params[k]->value, grads[k], loss, {.eps = 3e-3, .max_checks = 24});
    CHECK_MESSAGE(r.ok, r.message);
    const double atol = 0.03 * term_grads[k].cwiseAbs().maxCoeff();
    r = nn::check_gradient(term + " " + params[k]->name, params[k]->value, term_grads[k], term_loss,
                           {.eps = 1e-2, .rtol = 5e-2, .atol = atol, .max_checks = 24});
    CHECK_MESSAGE(r.ok, r.message);
  }
}

int train_until_exact(Translator& m, const ParallelCorpus& c, int max_epochs, float lr) {
  auto data = encode_corpus(m, c);
  struct Done {};
  int done = -1;
  train::Callbacks cb;
  cb.on_epoch = [&](const train::EpochInfo& e) {
    if (e.epoch % 5 == 4 && evaluate_translator(m, c, {}).exact == static_cast<int>(c.size())) {
      done = e.epoch + 1;
      throw Done{};
    }
  };
  try {
    train::train_translator(m, data, {.epochs = max_epochs, .batch = 4, .lr = lr, .min_lr_ratio = 1.0f, .warmup = 0}, cb);
  } catch (const Done&) {
  }
  return done;
}

}  // namespace

TEST_CASE("rnn: a tiny corpus is learned to exact match; beam 1 == greedy; file round trip") {
  auto c = generate_synthetic({.count = 12, .seed = 5});
  // additive with both attention queries (s_t and Bahdanau's s_{t-1}), dot with s_t
  const std::pair<nn::Score, const char*> kinds[] = {
      {nn::Score::Additive, "current"}, {nn::Score::Additive, "previous"}, {nn::Score::Dot, "current"}};
  for (auto [score, query] : kinds) {
    CAPTURE(nn::score_name(score));
    CAPTURE(query);
    TranslatorConfig cfg;
    cfg.attention = score;
    cfg.query = query;
    cfg.embed = cfg.hidden = 32;
    auto m = tiny_model(c, cfg);
    int epochs = train_until_exact(*m, c, 80, 1e-2f);
    CHECK(epochs > 0);
    auto data = encode_corpus(*m, c);
    std::vector<std::vector<int>> src;
    for (const auto& d : data) src.push_back(d.src);
    auto greedy = greedy_decode(*m, src);
    for (size_t i = 0; i < data.size(); ++i) {
      CHECK(beam_decode(*m, data[i].src, {.width = 1, .length_penalty = 0}) == greedy[i]);
      CHECK(beam_decode(*m, data[i].src, {.width = 1, .length_penalty = 1}) == greedy[i]);
    }
    // record: [1, T+1, S+1] with tokens and metadata; rows sum to 1
    auto rec = record_translation(*m, data[0].src, data[0].tgt);
    REQUIRE(rec.tensors.size() == 1);
    const auto& t = rec.tensors[0];
    CHECK(t.name == "decoder.layer0.cross");
    CHECK(t.queries == static_cast<int>(data[0].tgt.size()) + 1);
    CHECK(t.keys == static_cast<int>(data[0].src.size()) + 1);
    CHECK(rec.tokens["source"].back() == "<eos>");
    CHECK(rec.metadata["attention"] == nn::score_name(score));
    CHECK(rec.metadata["query"] == query);
    float sum = 0;
    for (int k = 0; k < t.keys; ++k) sum += t.at(0, 1, k);
    CHECK(sum == doctest::Approx(1.0f).epsilon(1e-4));
    // save / load gives the same translations
    auto dir = temp_dir(std::string("rnn_file_") + nn::score_name(score) + "_" + query);
    save_translator(dir / "m.safetensors", *m);
    auto back = load_translator(dir / "m.safetensors");
    CHECK(back->name() == m->name());
    CHECK(back->config.query == query);
    CHECK(greedy_decode(*back, src) == greedy);
  }
}

TEST_CASE("transformer: a tiny corpus is learned; beam 1 == greedy; records self and cross attention") {
  auto c = generate_synthetic({.count = 8, .seed = 6});
  auto m = tiny_model(c, {.arch = "transformer", .dim = 32, .heads = 2, .layers = 1, .ff = 64, .max_len = 40});
  int epochs = train_until_exact(*m, c, 150, 3e-3f);
  CHECK(epochs > 0);
  auto data = encode_corpus(*m, c);
  std::vector<std::vector<int>> src;
  for (const auto& d : data) src.push_back(d.src);
  auto greedy = greedy_decode(*m, src);
  for (size_t i = 0; i < data.size(); ++i) CHECK(beam_decode(*m, data[i].src, {.width = 1}) == greedy[i]);
  auto rec = record_translation(*m, data[0].src, data[0].tgt);
  REQUIRE(rec.tensors.size() == 3);
  CHECK(rec.find("encoder.layer0.self")->heads == 2);
  CHECK(rec.find("decoder.layer0.self")->queries == static_cast<int>(data[0].tgt.size()) + 1);
  CHECK(rec.find("decoder.layer0.cross")->keys == static_cast<int>(data[0].src.size()) + 1);
  rec.validate("test");
}

TEST_CASE("record_translation labels out-of-vocabulary positions with the words they stand for") {
  auto c = generate_synthetic({.count = 8, .seed = 6});
  auto m = tiny_model(c, {.arch = "transformer", .dim = 16, .heads = 2, .layers = 1, .ff = 32, .max_len = 40});
  std::vector<std::string> src_words = {"Zeitzonenabkürzung", "the"}, tgt_words = {"Zeitzone", "."};
  auto src = m->src_vocab.encode(src_words), tgt = m->tgt_vocab.encode(tgt_words);
  REQUIRE(src[0] == Vocabulary::kUnk);
  REQUIRE(tgt[0] == Vocabulary::kUnk);
  auto rec = record_translation(*m, src, tgt, &src_words, &tgt_words);
  CHECK(rec.tokens["source"] == std::vector<std::string>{"Zeitzonenabkürzung", "the", "<eos>"});
  CHECK(rec.tokens["target"] == std::vector<std::string>{"Zeitzone", ".", "<eos>"});
  CHECK(rec.metadata["unknown_source"] == "1");
  CHECK(rec.metadata["unknown_target"] == "1");
  // Without the words (or with a list that does not line up) the ids' own tokens are used.
  auto plain = record_translation(*m, src, tgt);
  CHECK(plain.tokens["source"][0] == "<unk>");
  std::vector<std::string> short_list = {"x"};
  CHECK(record_translation(*m, src, tgt, &short_list).tokens["source"][0] == "<unk>");
}

TEST_CASE("model files: wrong kind and garbage are input errors") {
  auto dir = temp_dir("bad_models");
  spit(dir / "x.safetensors", "not a safetensors file at all");
  CHECK_THROWS_AS(load_translator(dir / "x.safetensors"), InputError);
  save_model(dir / "y.safetensors", *make_mnist_model({}, 1));
  CHECK_THROWS_WITH_AS(load_translator(dir / "y.safetensors"), doctest::Contains("is a mnist model, not a translator model"),
                       InputError);
}

TEST_CASE("rnn coverage penalty: default by scoring function, value by hand, gradient, file round trip") {
  auto c = generate_synthetic({.count = 4, .seed = 7});
  // defaults: additive gets the penalty, the other scores and the transformer do not
  CHECK(tiny_model(c, {})->config.coverage == kDefaultAdditiveCoverage);
  CHECK(tiny_model(c, {.attention = nn::Score::Dot})->config.coverage == 0.f);
  CHECK(tiny_model(c, {.arch = "transformer", .dim = 8, .heads = 2, .layers = 1, .ff = 8, .max_len = 40})->config.coverage == 0.f);
  for (nn::Score score : {nn::Score::Additive, nn::Score::General}) {
    CAPTURE(nn::score_name(score));
    TranslatorConfig cfg;
    cfg.attention = score;
    cfg.embed = 6;
    cfg.hidden = 5;
    cfg.coverage = 2.f;   // large, so its gradient is a visible part of the total
    auto m = tiny_model(c, cfg);
    auto data = encode_corpus(*m, c);
    // A little training without the penalty first: peaked attention leaves some source words
    // unattended (gaps near 1), so the penalty and its gradient are well above rounding noise.
    m->config.coverage = 0.f;
    train::train_translator(*m, data, {.epochs = 30, .batch = 4, .lr = 1e-2f, .warmup = 0});
    m->config.coverage = 2.f;
    // One sentence: penalty = lambda / (T+1) * sum_i (1 - sum_j a_ji)^2 over the recorded [T+1, S+1] weights.
    auto rec = m->record(data[0].src, data[0].tgt);
    const auto& w = rec.tensors[0];
    double expected = 0;
    for (int i = 0; i < w.keys; ++i) {
      double col = 0;
      for (int j = 0; j < w.queries; ++j) col += w.at(0, j, i);
      expected += (1 - col) * (1 - col);
    }
    expected *= 2.0 / w.queries;
    m->params().zero_grad();
    BatchResult one = m->train_batch({&data[0]}, nullptr);
    CHECK(one.penalty == doctest::Approx(expected).epsilon(1e-4));
    CHECK(one.penalty > 0);
    // A batch of sentences of different lengths (padding on both sides): the gradient of
    // cross-entropy + penalty against central differences.
    std::vector<const Example*> batch = {&data[0], &data[1], &data[2], &data[3]};
    m->params().zero_grad();
    m->train_batch(batch, nullptr);
    const char* names[] = {"decoder.attn.W", "encoder.bwd.wx", "src_embed.weight", "decoder.gru.wh"};
    std::vector<Mat> grads;   // copied first: every loss() below adds into the gradients again
    for (const char* name : names) {
      REQUIRE(m->params().find(name) != nullptr);
      grads.push_back(m->params().find(name)->grad);
    }
    // The penalty's own share (total minus a run without it) against differences of the penalty
    // alone, so a wrong coverage gradient cannot hide in the much larger cross-entropy one.
    std::vector<Mat> cov_grads;
    m->config.coverage = 0.f;
    m->params().zero_grad();
    m->train_batch(batch, nullptr);
    m->config.coverage = 2.f;
    for (int k = 0; k < 4; ++k) cov_grads.push_back(grads[k] - m->params().find(names[k])->grad);
    CHECK(cov_grads[0].cwiseAbs().maxCoeff() > 1e-5);
    std::vector<nn::Param*> params;
    for (const char* name : names) params.push_back(m->params().find(name));
    check_loss_and_term_gradients(
        "coverage", params, grads, cov_grads,
        [&] {
          BatchResult r = m->train_batch(batch, nullptr);
          return r.loss + r.penalty;
        },
        [&] { return m->train_batch(batch, nullptr).penalty; });
    // the weight is stored in the model file
    auto dir = temp_dir(std::string("rnn_coverage_") + nn::score_name(score));
    save_translator(dir / "m.safetensors", *m);
    CHECK(load_translator(dir / "m.safetensors")->config.coverage == 2.f);
  }
}

// ---- guided alignment (config.guide, train translate --guide-ibm1) ----------------------------

TEST_CASE("guided alignment: loss by hand, gradient against central differences, file round trip") {
  auto c = generate_synthetic({.count = 4, .seed = 7});
  for (nn::Score score : {nn::Score::Additive, nn::Score::Dot}) {
    CAPTURE(nn::score_name(score));
    TranslatorConfig cfg;
    cfg.attention = score;
    cfg.embed = 6;
    cfg.hidden = 5;
    cfg.guide = 2.f;   // large, so its gradient is a visible part of the total
    auto m = tiny_model(c, cfg);
    auto data = encode_corpus(*m, c);
    for (auto& ex : data) {   // links: target j -> source j (when it exists) and j -> 0 for odd j
      for (int j = 0; j < static_cast<int>(ex.tgt.size()); ++j) {
        if (j < static_cast<int>(ex.src.size())) ex.guide.links.push_back({j, j, true});
        if (j % 2 == 1) ex.guide.links.push_back({0, j, true});
      }
      ex.guide.links.push_back({99, 0, true});   // outside the sentence: ignored
    }
    // One sentence: guide = lambda / G * sum over rows with links of -sum_i g_ji log a_ji.
    auto rec = m->record(data[0].src, data[0].tgt);
    const auto& w = rec.tensors[0];   // [1, T+1, S+1]
    double expected = 0;
    int G = 0;
    for (int j = 0; j < static_cast<int>(data[0].tgt.size()); ++j) {
      std::vector<int> src;
      for (const auto& l : data[0].guide.links)
        if (l.target == j && l.source < static_cast<int>(data[0].src.size())) src.push_back(l.source);
      std::sort(src.begin(), src.end());
      src.erase(std::unique(src.begin(), src.end()), src.end());
      if (src.empty()) continue;
      ++G;
      for (int i : src) expected -= std::log(w.at(0, j, i)) / src.size();
    }
    REQUIRE(G > 0);
    expected *= 2.0 / G;
    m->params().zero_grad();
    BatchResult one = m->train_batch({&data[0]}, nullptr);
    CHECK(one.guide == doctest::Approx(expected).epsilon(1e-4));
    // A batch of different lengths (padding on both sides): gradient of the whole loss, and of
    // the guide's own share (total minus a run without it) against differences of the guide alone.
    std::vector<const Example*> batch = {&data[0], &data[1], &data[2], &data[3]};
    m->params().zero_grad();
    m->train_batch(batch, nullptr);
    const char* names[] = {"decoder.attn.W", "encoder.bwd.wx", "src_embed.weight", "decoder.gru.wh"};
    std::vector<Mat> grads, guide_grads;
    for (const char* name : names) {
      nn::Param* p = m->params().find(name);
      if (!p) continue;   // dot attention has no W
      grads.push_back(p->grad);
    }
    m->config.guide = 0.f;
    m->params().zero_grad();
    CHECK(m->train_batch(batch, nullptr).guide == 0.0);
    m->config.guide = 2.f;
    std::vector<nn::Param*> params;
    for (const char* name : names)
      if (nn::Param* p = m->params().find(name)) params.push_back(p);
    REQUIRE(params.size() == grads.size());
    for (size_t k = 0; k < params.size(); ++k) guide_grads.push_back(grads[k] - params[k]->grad);
    CHECK(guide_grads[0].cwiseAbs().maxCoeff() > 1e-5);
    check_loss_and_term_gradients(
        "guide", params, grads, guide_grads,
        [&] {
          BatchResult r = m->train_batch(batch, nullptr);
          return r.loss + r.penalty + r.guide;
        },
        [&] { return m->train_batch(batch, nullptr).guide; });
    auto dir = temp_dir(std::string("guided_") + nn::score_name(score));
    save_translator(dir / "m.safetensors", *m);
    CHECK(load_translator(dir / "m.safetensors")->config.guide == 2.f);
  }
}

TEST_CASE("guided alignment: word links to BPE pieces; the aligner's links attached; training lowers the guide loss") {
  auto c = generate_synthetic({.count = 300, .seed = 3});
  TranslatorConfig cfg;
  cfg.embed = cfg.hidden = 16;
  cfg.guide = 1.f;
  auto m = tiny_model(c, cfg);
  // pieces: source "ab@@ c" "d", target "e" "f@@ g@@ h": word link (0, 1) -> 2 x 3 piece links
  m->src_bpe = Bpe(std::vector<Bpe::Pair>{{"a", "b"}}), m->tgt_bpe = Bpe(std::vector<Bpe::Pair>{{"x", "y"}});
  SentencePair words{{"abc", "d"}, {"e", "fgh"}, {}};
  REQUIRE(m->src_bpe.apply(words.source).size() == 3);   // "abc" -> "ab@@" "c"; "d"
  Alignment w;
  w.links = {{0, 1, true}, {1, 0, true}};
  Alignment p = links_to_pieces(*m, words, w);
  // source pieces: ab@@ c | d -> words 0:[0,2) 1:[2,3); target: e | f@@ g@@ h -> 0:[0,1) 1:[1,4)
  CHECK(p.links.size() == 2 * 3 + 1);
  CHECK(p.contains(0, 1));
  CHECK(p.contains(1, 3));
  CHECK(p.contains(2, 0));
  CHECK(!p.contains(2, 1));

  // attach_guide on a model without BPE: the links are the aligner's, target by target
  m->src_bpe = Bpe(), m->tgt_bpe = Bpe();
  auto data = encode_corpus(*m, c);
  auto links = attach_guide(*m, c, data, {.diagonal_tension = 4});
  REQUIRE(links.size() == c.size());
  for (size_t k = 0; k < c.size(); ++k) CHECK(data[k].guide.links == links[k].links);
  // the aligner agrees with the synthetic gold on most links (its AER here is a few percent)
  std::vector<Alignment> gold;
  for (const auto& pr : c.pairs) gold.push_back(*pr.gold);
  CHECK(score_alignments(links, gold).aer() < 0.2);
  // training with the guide lowers it
  std::vector<const Example*> all;
  for (const auto& ex : data) all.push_back(&ex);
  const double before = m->train_batch(all, nullptr).guide;
  m->params().zero_grad();
  train::train_translator(*m, data, {.epochs = 4, .batch = 16, .lr = 1e-2f, .warmup = 0});
  const double after = m->train_batch(all, nullptr).guide;
  CHECK(after < 0.75 * before);
}

// ---- both directions (eval translate --reverse-model) ------------------------------------------

TEST_CASE("evaluate_translator with a reverse model: AER of both directions' attention symmetrized") {
  auto c = generate_synthetic({.count = 60, .seed = 5});
  ParallelCorpus swapped;   // target -> source, the gold transposed
  for (const auto& p : c.pairs) {
    Alignment g;
    for (const auto& l : p.gold->links) g.links.push_back({l.target, l.source, l.sure});
    swapped.pairs.push_back({p.target, p.source, g});
  }
  TranslatorConfig cfg;
  cfg.embed = cfg.hidden = 16;
  auto fwd = tiny_model(c, cfg);
  auto rev = tiny_model(swapped, cfg);
  train::train_translator(*fwd, encode_corpus(*fwd, c), {.epochs = 8, .batch = 8, .lr = 1e-2f, .warmup = 0});
  train::train_translator(*rev, encode_corpus(*rev, swapped), {.epochs = 8, .batch = 8, .lr = 1e-2f, .warmup = 0});
  const TranslationEval f = evaluate_translator(*fwd, c, {});
  const TranslationEval r = evaluate_translator(*rev, swapped, {});
  REQUIRE(f.alignment.size() == 1);
  REQUIRE(r.alignment.size() == 1);
  auto with = [&](Symmetrize how, Combine combine = Combine::None) {
    EvalOptions o;
    o.reverse = rev.get();
    o.symmetrize = how;
    o.combine = combine;
    TranslationEval e = evaluate_translator(*fwd, c, o);
    CHECK(e.bleu.bleu == f.bleu.bleu);   // translation is the forward model's alone
    REQUIRE(e.alignment.size() == 1);
    return e.alignment[0].score;
  };
  // forward alone: the plain evaluation; reverse alone: the reverse model's links, transposed
  const AlignmentScore fo = with(Symmetrize::Forward), re = with(Symmetrize::Reverse);
  CHECK(fo.predicted == f.alignment[0].score.predicted);
  CHECK(fo.a_and_s == f.alignment[0].score.a_and_s);
  CHECK(fo.a_and_p == f.alignment[0].score.a_and_p);
  CHECK(re.predicted == r.alignment[0].score.predicted);
  CHECK(re.sure == r.alignment[0].score.sure);
  CHECK(re.a_and_s == r.alignment[0].score.a_and_s);
  CHECK(re.a_and_p == r.alignment[0].score.a_and_p);
  // |F ∩ R| + |F ∪ R| = |F| + |R| sentence by sentence (argmax links are distinct), and likewise
  // for the links that are in the gold
  const AlignmentScore in = with(Symmetrize::Intersect), un = with(Symmetrize::Union);
  CHECK(in.predicted + un.predicted == fo.predicted + re.predicted);
  CHECK(in.a_and_s + un.a_and_s == fo.a_and_s + re.a_and_s);
  CHECK(in.predicted <= fo.predicted);
  const AlignmentScore gd = with(Symmetrize::GrowDiagFinalAnd);
  CHECK(gd.predicted >= in.predicted);
  CHECK(gd.predicted <= un.predicted);
  // the product matrix: its rows give one link per target word, like the forward model's argmax
  const AlignmentScore pf = with(Symmetrize::Forward, Combine::Product);
  CHECK(pf.predicted == fo.predicted);
  const AlignmentScore pi = with(Symmetrize::Intersect, Combine::Product), pu = with(Symmetrize::Union, Combine::Product);
  CHECK(pi.predicted <= pf.predicted);
  CHECK(pu.predicted >= pf.predicted);
}

TEST_CASE("train translate: guided alignment is the rnn default (aligner at tension 4); --no-guide turns it off") {
  const fs::path dir = temp_dir("translate_guide_default");
  const std::string common = "--threads 1 train translate --synthetic 60 --epochs 1 --batch 8 --embed 8 --hidden 8 --heldout 0 ";
  auto train = [&](const std::string& name, const std::string& args) {
    const std::string out = (dir / name).string();
    auto r = run_cli(common + args + " -o '" + out + "'");
    REQUIRE_MESSAGE(r.code == 0, r.out);
    return std::make_pair(r.out, out);
  };
  // the default recipe: the aligner's links at its own default tension (4), weight 1
  const auto [said, path] = train("default.safetensors", "");
  CHECK_MESSAGE(said.find("guided alignment (--no-guide: off): the aligner's links (IBM Model 1, diagonal tension 4, "
                          "grow-diag-final-and) on 60 training pairs, weight 1") != std::string::npos, said);
  CHECK(load_translator(path)->config.guide == kDefaultGuideWeight);
  CHECK(StatAlignOptions{}.diagonal_tension == 4.0);   // the guide's default tension is the aligner's
  // --guide-ibm1 is the old spelling of the default: the same model, byte for byte
  CHECK(slurp(path) == slurp(train("old.safetensors", "--guide-ibm1").second));
  // --guide-tension 0 (plain Model 1) gives other links, so another model
  const auto [said0, path0] = train("t0.safetensors", "--guide-tension 0");
  CHECK(said0.find("diagonal tension 0,") != std::string::npos);
  CHECK(slurp(path0) != slurp(path));
  // --no-guide and --guide-weight 0: no aligner, no guide loss, the same unguided model
  const auto [said_off, off] = train("off.safetensors", "--no-guide");
  CHECK(said_off.find("guided alignment") == std::string::npos);
  CHECK(load_translator(off)->config.guide == 0.f);
  CHECK(slurp(off) != slurp(path));
  CHECK(slurp(off) == slurp(train("w0.safetensors", "--guide-weight 0").second));
  // guide options with --no-guide: a usage error (exit 1), naming the option
  auto r = run_cli(common + "--no-guide --guide-tension 0 -o '" + (dir / "x.safetensors").string() + "'");
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.out.find("--guide-tension") != std::string::npos, r.out);
  // the transformer has no guided alignment: off by default, refused when asked for
  const std::string tf = "--arch transformer --dim 8 --heads 2 --layers 1 --ff 8 ";
  const auto [said_tf, tf_path] = train("tf.safetensors", tf);
  CHECK(said_tf.find("guided alignment") == std::string::npos);
  CHECK(load_translator(tf_path)->config.guide == 0.f);
  r = run_cli(common + tf + "--guide-ibm1 -o '" + (dir / "y.safetensors").string() + "'");
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.out.find("transformer has no guided alignment") != std::string::npos, r.out);
}
