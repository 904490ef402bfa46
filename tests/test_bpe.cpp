// Byte-pair encoding (text/bpe.hpp): merges learned on a hand-worked toy corpus, segmentation,
// pieces back to words, the merges in model files, and a BPE translator scored per word.
#include <doctest/doctest.h>

#include <attnviz/error.hpp>
#include <attnviz/models/textcls.hpp>
#include <attnviz/models/translator.hpp>
#include <attnviz/record/subwords.hpp>
#include <attnviz/text/bpe.hpp>
#include <attnviz/train/tasks.hpp>

#include "test_util.hpp"

using namespace attnviz;
using namespace attnviz::models;
using namespace attnviz::test;

namespace {
std::vector<std::string> words_of(const std::vector<std::string>& pieces) {
  return merge_tokens(pieces, word_groups(pieces, "bpe@@"));
}
}  // namespace

TEST_CASE("bpe: Sennrich et al.'s toy dictionary, merges worked by hand") {
  // low x5, lower x2, newest x6, widest x3; symbols are characters, the last one marked "</w>".
  // Pair counts: (e,s) 9 and (s,t</w>) 9 tie -> the smaller pair (e,s); then (es,t</w>) 9; (l,o) 7;
  // then (e,w), (n,e), (w,est</w>) tie at 6 -> (e,w); then (ew,est</w>) 6 before (n,ew) 6;
  // then (n,ewest</w>) 6; then (lo,w</w>) 5.
  std::vector<std::vector<std::string>> corpus;
  for (auto [w, n] : std::vector<std::pair<std::string, int>>{{"low", 5}, {"lower", 2}, {"newest", 6}, {"widest", 3}})
    for (int i = 0; i < n; ++i) corpus.push_back({w});
  Bpe bpe = Bpe::learn(corpus, 7);
  const std::vector<Bpe::Pair> expected = {{"e", "s"},  {"es", "t</w>"},     {"l", "o"},     {"e", "w"},
                                           {"ew", "est</w>"}, {"n", "ewest</w>"}, {"lo", "w</w>"}};
  CHECK(bpe.merges() == expected);
  CHECK(bpe.segment("newest") == std::vector<std::string>{"newest"});
  CHECK(bpe.segment("low") == std::vector<std::string>{"low"});
  // unseen words: merges applied lowest rank first ("lowest": es, est</w>, lo; no (lo,w) merge)
  CHECK(bpe.segment("lowest") == std::vector<std::string>{"lo@@", "w@@", "est"});
  CHECK(bpe.segment("widest") == std::vector<std::string>{"w@@", "i@@", "d@@", "est"});
  CHECK(bpe.segment("lower") == std::vector<std::string>{"lo@@", "w@@", "e@@", "r"});
  // learning stops when no pair occurs twice: the whole dictionary ends up as four symbols
  Bpe all = Bpe::learn(corpus, 1000);
  CHECK(all.merges().size() > 7);
  for (const char* w : {"low", "lower", "newest", "widest"}) CHECK(all.segment(w) == std::vector<std::string>{w});
  // no merges: words unchanged
  CHECK(Bpe().apply({"a", "bc"}) == std::vector<std::string>{"a", "bc"});
}

TEST_CASE("bpe: encode/decode round trip on UTF-8 words; merges through JSON") {
  std::vector<std::vector<std::string>> corpus = {
      {"Die", "Größe", "der", "Zeitzone", "ändern"}, {"Zeitzonen", "größer", "ändert"}, {"die", "Zeit", "läuft", "."}};
  Bpe bpe = Bpe::learn(corpus, 30);
  REQUIRE(!bpe.empty());
  const std::vector<std::string> sentence = {"Die", "Zeitzonenänderung", "größte", "x", "ü", ".", "Größe"};
  auto pieces = bpe.apply(sentence);
  CHECK(pieces.size() > sentence.size());
  for (const auto& p : pieces) CHECK(utf8_valid(p));   // never a split inside a code point
  CHECK(words_of(pieces) == sentence);
  // stored and read back: the same merges and the same pieces
  Bpe back = Bpe::from_json(bpe.to_json(), "m.safetensors");
  CHECK(back.merges() == bpe.merges());
  CHECK(back.apply(sentence) == pieces);
  CHECK_THROWS_AS(Bpe::from_json("[[\"a\"]]", "m.safetensors"), InputError);
  CHECK_THROWS_AS(Bpe::from_json("{", "m.safetensors"), InputError);
  // a record's '@@' pieces are recognized by --merge-subwords without a scheme
  CHECK(word_groups({"Zeit@@", "zone", "."}) == std::vector<int>{0, 0, 1});
}

TEST_CASE("bpe translator: file round trip, and eval scores the word-level view (equal to merging by hand)") {
  auto c = generate_synthetic({.count = 40, .seed = 11});
  std::vector<std::vector<std::string>> s, t;
  for (const auto& p : c.pairs) s.push_back(p.source), t.push_back(p.target);
  TranslatorConfig cfg;
  cfg.embed = cfg.hidden = 12;
  cfg.bpe = 40;
  Bpe sb = Bpe::learn(s, cfg.bpe), tb = Bpe::learn(t, cfg.bpe);
  for (auto& x : s) x = sb.apply(x);
  for (auto& x : t) x = tb.apply(x);
  auto m = make_translator(cfg, Vocabulary::build(s), Vocabulary::build(t));
  m->src_bpe = sb, m->tgt_bpe = tb;
  m->init(2);
  auto data = encode_corpus(*m, c);
  train::train_translator(*m, data, {.epochs = 3, .batch = 8, .lr = 1e-2f, .warmup = 0});
  auto dir = temp_dir("bpe_translator");
  save_translator(dir / "m.safetensors", *m);
  auto back = load_translator(dir / "m.safetensors");
  CHECK(back->config.bpe == 40);
  CHECK(back->src_bpe.merges() == sb.merges());
  CHECK(back->tgt_bpe.merges() == tb.merges());
  CHECK(encode_corpus(*back, c)[0].src == data[0].src);

  // By hand: each pair's record (pieces), rows averaged over a target word's pieces, columns summed
  // over a source word's pieces, <eos> dropped, argmax per row, scored against the word-level gold.
  int multi = 0;
  std::vector<Alignment> pred, gold;
  for (size_t k = 0; k < c.size(); ++k) {
    AttentionRecord rec = record_translation(*m, data[k].src, data[k].tgt);
    CHECK(rec.metadata.at("subwords") == "bpe@@");
    const AttentionTensor& w = rec.tensors.back();   // decoder.layer0.cross [1, T+1, S+1]
    const auto ps = sb.apply(c.pairs[k].source), pt = tb.apply(c.pairs[k].target);
    const auto gs = word_groups(ps, "bpe@@"), gt = word_groups(pt, "bpe@@");
    const int S = gs.back() + 1, T = gt.back() + 1;
    multi += static_cast<int>(ps.size()) > S;
    Mat W = Mat::Zero(T, S);
    std::vector<int> n(T, 0);
    for (int q : gt) ++n[q];
    for (size_t j = 0; j < pt.size(); ++j)
      for (size_t i = 0; i < ps.size(); ++i) W(gt[j], gs[i]) += w.at(0, static_cast<int>(j), static_cast<int>(i)) / n[gt[j]];
    pred.push_back(extract_alignment(W));
    gold.push_back(*c.pairs[k].gold);
  }
  CHECK(multi > 0);   // some words really are split
  const double by_hand = score_alignments(pred, gold).aer();
  auto r = evaluate_translator(*m, c, {});
  REQUIRE(r.alignment.size() == 1);
  CHECK(r.alignment[0].score.aer() == doctest::Approx(by_hand).epsilon(1e-12));
  // hypotheses are words again (no "@@" left)
  for (const auto& h : r.hypotheses)
    for (const auto& x : h) CHECK(x.find("@@") == std::string::npos);
}

TEST_CASE("bpe text classifier: pieces in the text's own case, file round trip, records merge back to words") {
  const std::vector<std::string> texts = {"Zeitzone ändern", "die Zeitzone", "Zeitzonen und Zeiten", "Zeit läuft",
                                          "ÄNDERN der Zeit", "zeitlos"};
  Bpe bpe = models::learn_text_bpe(texts, 12);
  REQUIRE(!bpe.empty());
  models::TextClsConfig cfg;
  cfg.embed = cfg.hidden = cfg.attn_hidden = 4;
  cfg.bpe = 12;
  auto m = models::make_textcls_model(cfg, models::build_text_vocab(texts, 1, bpe), {"a", "b"}, 1);
  m->set_bpe(bpe);
  // "ÄNDERN" is cut where "ändern" is, in capitals; joining the pieces gives the words back
  const auto folded = bpe.segment("ändern");
  const auto tok = m->tokens("ÄNDERN Zeitzonen");
  REQUIRE(tok.size() >= folded.size());
  for (size_t i = 0; i < folded.size(); ++i) CHECK(utf8_length(tok[i]) == utf8_length(folded[i]));
  CHECK(tok[0].substr(0, 2) == "\xC3\x84");   // "Ä"
  CHECK(words_of(tok) == std::vector<std::string>{"ÄNDERN", "Zeitzonen"});
  // known pieces get ids (not <unk>)
  auto b = m->batch({"Zeitzone"});
  for (int id : b.ids) CHECK(id != Vocabulary::kUnk);
  auto dir = temp_dir("bpe_textcls");
  models::save_textcls_model(dir / "m.safetensors", *m);
  auto back = models::load_textcls_model(dir / "m.safetensors");
  CHECK(back.model->bpe().merges() == bpe.merges());
  CHECK(back.model->tokens("ÄNDERN Zeitzonen") == tok);
  auto recs = models::record_textcls(*back.model, {{"Zeitzonen ändern", 0}});
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].metadata.at("subwords") == "bpe@@");
  merge_subwords(recs[0]);
  CHECK(recs[0].tokens.at("tokens") == std::vector<std::string>{"Zeitzonen", "ändern"});
}

TEST_CASE("cli: train translate --bpe --guide-ibm1, record keeps pieces, align scores per word") {
  auto dir = temp_dir("bpe_cli");
  const std::string model = (dir / "m.safetensors").string(), rec = (dir / "r.safetensors").string();
  auto r = run_cli("--quiet train translate --synthetic 300 --epochs 1 --embed 8 --hidden 8 --bpe 30 --guide-ibm1 "
                   "--heldout 0 --out '" + model + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  auto m = load_translator(model);
  CHECK(m->config.bpe == 30);
  CHECK(m->config.guide == 1.f);
  CHECK(m->src_bpe.merges().size() == 30);
  // the built-in generator's test pairs with gold: record keeps pieces, metadata names the scheme
  r = run_cli("record translate --model '" + model + "' --synthetic 5 --from-corpus all -o '" + rec + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  auto recs = load_records(rec);
  REQUIRE(recs.size() == 5);
  bool pieces = false;
  for (const auto& x : recs) {
    CHECK(x.metadata.at("subwords") == "bpe@@");
    for (const auto& t : x.tokens.at("source")) pieces = pieces || t.find("@@") != std::string::npos;
  }
  CHECK(pieces);
  // gold (word indices) from the records: align merges pieces by itself and scores per word, the same
  // numbers as with --merge-subwords
  std::string gold;
  for (const auto& x : recs) gold += x.metadata.at("gold") + "\n";
  spit(dir / "g.txt", gold);
  const std::string args = "align '" + rec + "' --all-samples --gold '" + (dir / "g.txt").string() + "' --json";
  auto a = run_cli(args), b = run_cli(args + " --merge-subwords");
  REQUIRE_MESSAGE(a.code == 0, a.out);
  REQUIRE_MESSAGE(b.code == 0, b.out);
  CHECK(a.out.find("scored per word") != std::string::npos);
  auto json_of = [](const std::string& out) { return out.substr(out.find('{')); };
  CHECK(json_of(a.out) == json_of(b.out));
}
