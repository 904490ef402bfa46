// The built-in statistical aligner (issue 18 item 2): IBM Model 1 and the diagonal prior of
// fast_align on known toy corpora, the symmetrization heuristics on hand-worked cases, and
// `attnviz align --train-ibm1` end to end on the built-in corpus with its exact gold.
#include <attnviz/analysis/alignment.hpp>
#include <attnviz/analysis/statistical_aligner.hpp>
#include <attnviz/error.hpp>
#include <attnviz/record/record.hpp>

#include <doctest/doctest.h>

#include "test_util.hpp"

#include <sstream>
#include <stdexcept>

using namespace attnviz;
using namespace attnviz::test;

namespace {
SentencePair pair(const std::string& s, const std::string& t) {
  SentencePair p;
  std::istringstream a(s), b(t);
  for (std::string w; a >> w;) p.source.push_back(w);
  for (std::string w; b >> w;) p.target.push_back(w);
  return p;
}
Alignment links(std::vector<std::pair<int, int>> l) {
  Alignment a;
  for (auto [i, j] : l) a.links.push_back({i, j});
  return a;
}
bool same(const Alignment& a, const Alignment& b) {
  if (a.links.size() != b.links.size()) return false;
  for (const auto& l : a.links)
    if (!b.contains(l.source, l.target)) return false;
  return true;
}
std::string show(const Alignment& a) { return format_pharaoh(a); }
}  // namespace

TEST_CASE("IBM Model 1 learns the textbook 'la maison' example in both directions") {
  // Koehn's textbook corpus: EM separates the/la, house/maison, blue/bleue, flower/fleur from
  // co-occurrence alone (no position information: diagonal tension 0).
  const std::vector<SentencePair> c = {pair("la maison", "the house"), pair("la maison bleue", "the blue house"),
                                       pair("la fleur", "the flower")};
  StatAlignOptions o;
  o.diagonal_tension = 0;
  o.iterations = 10;
  const auto d = train_directions(c, o);
  CHECK_MESSAGE(same(d.forward[0], links({{0, 0}, {1, 1}})), show(d.forward[0]));
  CHECK_MESSAGE(same(d.forward[1], links({{0, 0}, {2, 1}, {1, 2}})), show(d.forward[1]));
  CHECK_MESSAGE(same(d.forward[2], links({{0, 0}, {1, 1}})), show(d.forward[2]));
  CHECK_MESSAGE(same(d.reverse[1], links({{0, 0}, {2, 1}, {1, 2}})), show(d.reverse[1]));
  o.symmetrize = Symmetrize::Intersect;
  const auto a = train_and_align(c, o);
  CHECK(same(a[1], links({{0, 0}, {2, 1}, {1, 2}})));
  // Zero iterations: t is uniform, so Model 1 cannot tell the words apart and every target word
  // takes the first source word (the first maximum) -- EM is what does the work above.
  o.iterations = 0;
  o.symmetrize = Symmetrize::Forward;
  CHECK(same(train_and_align(c, o)[1], links({{0, 0}, {0, 1}, {0, 2}})));
}

TEST_CASE("the diagonal prior breaks ties between repeated words by position (fast_align's reparameterization)") {
  const std::vector<SentencePair> c = {pair("a a a", "x x x"), pair("a b", "x y"), pair("b a", "y x")};
  StatAlignOptions o;
  o.symmetrize = Symmetrize::Forward;
  o.diagonal_tension = 0;
  CHECK(same(train_and_align(c, o)[0], links({{0, 0}, {0, 1}, {0, 2}})));   // Model 1: all to the first 'a'
  o.diagonal_tension = 4;
  CHECK(same(train_and_align(c, o)[0], links({{0, 0}, {1, 1}, {2, 2}})));   // prior: the diagonal
  // A very likely NULL takes every word: no links at all.
  o.null_probability = 0.999;
  CHECK(train_and_align(c, o)[0].links.empty());
}

TEST_CASE("symmetrization heuristics on a hand-worked 4x4 case") {
  // forward: 0-0 1-1 3-3; reverse: 0-0 1-1 3-2. Intersection 0-0 1-1; (3,3) and (3,2) touch no
  // intersection point, so grow-diag adds nothing; final adds 3-3 (both words unaligned) then 3-2
  // (its target is unaligned; "or"); final-and adds 3-3 only (3-2's source is aligned by then).
  const Alignment f = links({{0, 0}, {1, 1}, {3, 3}}), r = links({{0, 0}, {1, 1}, {3, 2}});
  CHECK(same(symmetrize(f, r, 4, 4, Symmetrize::Intersect), links({{0, 0}, {1, 1}})));
  CHECK(same(symmetrize(f, r, 4, 4, Symmetrize::Union), links({{0, 0}, {1, 1}, {3, 3}, {3, 2}})));
  CHECK(same(symmetrize(f, r, 4, 4, Symmetrize::GrowDiag), links({{0, 0}, {1, 1}})));
  CHECK(same(symmetrize(f, r, 4, 4, Symmetrize::GrowDiagFinal), links({{0, 0}, {1, 1}, {3, 3}, {3, 2}})));
  CHECK(same(symmetrize(f, r, 4, 4, Symmetrize::GrowDiagFinalAnd), links({{0, 0}, {1, 1}, {3, 3}})));
  // grow-diag: union points next to (also diagonally) an intersection point join when one of
  // their words is unaligned: (2,2) via (1,1); then (3,3) via (2,2).
  const Alignment f2 = links({{0, 0}, {1, 1}, {2, 2}, {3, 3}}), r2 = links({{0, 0}, {1, 1}});
  CHECK(same(symmetrize(f2, r2, 4, 4, Symmetrize::GrowDiag), f2));
  CHECK(same(symmetrize(f2, r2, 4, 4, Symmetrize::Forward), f2));
  CHECK(same(symmetrize(f2, r2, 4, 4, Symmetrize::Reverse), r2));
  CHECK_THROWS_AS(parse_symmetrize("diag"), UsageError);
  for (const char* n : {"forward", "reverse", "intersect", "union", "grow-diag", "grow-diag-final", "grow-diag-final-and"})
    CHECK(std::string(symmetrize_name(parse_symmetrize(n))) == n);
}

TEST_CASE("CLI: align --train-ibm1 on the built-in corpus writes one Pharaoh line per pair and scores the gold") {
  const auto dir = temp_dir("ibm1");
  const std::string tsv = (dir / "c.tsv").string();
  REQUIRE(run_cli("corpus translate --synthetic 2000 --seed 3 -o '" + tsv + "'").code == 0);
  const std::string out = (dir / "ibm1.talp").string();
  auto r = run_cli("align --train-ibm1 '" + tsv + "' -o '" + out + "' --json");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  const auto pred = read_pharaoh_file(out);
  CHECK(pred.size() == 2000);
  const auto j = r.out.find("\"aer\":");
  REQUIRE(j != std::string::npos);
  const double aer = std::stod(r.out.substr(j + 6));
  CHECK_MESSAGE(aer < 0.30, r.out);   // a baseline, not a perfect aligner: measured in the README
  // Plain Model 1 (no diagonal prior) scores worse on this word-order-swapping corpus.
  auto m1 = run_cli("align --train-ibm1 '" + tsv + "' --diagonal-tension 0 -o '" + (dir / "m1.talp").string() + "' --json");
  REQUIRE_MESSAGE(m1.code == 0, m1.out);
  const double aer1 = std::stod(m1.out.substr(m1.out.find("\"aer\":") + 6));
  CHECK_MESSAGE(aer < aer1, aer << " vs " << aer1);
  // Errors: a missing corpus is exit 2 naming it, nothing written; a bad --symmetrize is exit 1.
  auto bad = run_cli("align --train-ibm1 '" + (dir / "absent.tsv").string() + "' -o '" + (dir / "x.talp").string() + "'");
  CHECK(bad.code == 2);
  CHECK(bad.out.find("absent.tsv") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "x.talp"));
  CHECK(run_cli("align --train-ibm1 '" + tsv + "' --symmetrize diag").code == 1);
  CHECK(run_cli("align --train-ibm1 '" + tsv + "' --diagonal-tension nan").code == 1);
}

// ---- attention of two directions (align --reverse, eval translate --reverse-model) -------------

namespace {
// rows x cols, row by row
Mat mat(int rows, int cols, std::initializer_list<float> v) {
  Mat m(rows, cols);
  auto it = v.begin();
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) m(r, c) = *it++;
  return m;
}
// forward [3 target, 3 source]: argmax links (source-target) 0-0 0-1 2-2 (target 1 also prefers
// source 0); reverse [3 source, 3 target]: each source word's argmax target, 0-0 1-1 2-2.
const Mat kForward = mat(3, 3, {0.6f, 0.3f, 0.1f,  //
                                0.5f, 0.4f, 0.1f,  //
                                0.2f, 0.2f, 0.6f});
const Mat kReverse = mat(3, 3, {0.7f, 0.2f, 0.1f,  //
                                0.1f, 0.8f, 0.1f,  //
                                0.1f, 0.1f, 0.8f});
}  // namespace

TEST_CASE("symmetrize_attention: two directions' argmax links combined like the aligner's") {
  const AlignOptions am{.method = AlignMethod::Argmax};
  const Combine none = Combine::None;
  // Combine::None: each model's own argmax links
  CHECK(show(symmetrize_attention(kForward, kReverse, am, Symmetrize::Forward, none)) == "0-0 0-1 2-2");
  CHECK(show(symmetrize_attention(kForward, kReverse, am, Symmetrize::Reverse, none)) == "0-0 1-1 2-2");
  CHECK(show(symmetrize_attention(kForward, kReverse, am, Symmetrize::Intersect, none)) == "0-0 2-2");
  CHECK(show(symmetrize_attention(kForward, kReverse, am, Symmetrize::Union, none)) == "0-0 0-1 1-1 2-2");
  // grow-diag: from 0-0, the union points 0-1 (target 1 unaligned) and 1-1 (source 1 unaligned).
  CHECK(show(symmetrize_attention(kForward, kReverse, am, Symmetrize::GrowDiagFinalAnd, none)) == "0-0 0-1 1-1 2-2");
  // Not square: forward [2 target, 3 source] needs reverse [3, 2]; the reverse links are transposed.
  const Mat f23 = mat(2, 3, {0.1f, 0.1f, 0.8f,  //
                             0.7f, 0.2f, 0.1f});
  const Mat r32 = mat(3, 2, {0.2f, 0.8f,  //
                             0.6f, 0.4f,  //
                             0.9f, 0.1f});
  CHECK(show(symmetrize_attention(f23, r32, am, Symmetrize::Reverse, none)) == "1-0 2-0 0-1");
  CHECK(show(symmetrize_attention(f23, r32, am, Symmetrize::Intersect, none)) == "2-0 0-1");
  CHECK_THROWS_AS(symmetrize_attention(f23, f23, am, Symmetrize::Intersect), std::invalid_argument);
  // Combine::Product (the default): forward ⊙ reverseᵀ = [[.42 .03 .01] [.10 .32 .01] [.02 .02 .48]];
  // its rows and its columns both pick the diagonal, so target 1 moves from source 0 to source 1
  // whatever the heuristic.
  for (Symmetrize how : {Symmetrize::Forward, Symmetrize::Reverse, Symmetrize::Intersect, Symmetrize::GrowDiagFinalAnd})
    CHECK(show(symmetrize_attention(kForward, kReverse, am, how)) == "0-0 1-1 2-2");
  // [2, 3]: product [[.02 .06 .72] [.56 .08 .01]]; rows 2-0 0-1, columns 0-1 1-1 2-0
  CHECK(show(symmetrize_attention(f23, r32, am, Symmetrize::Forward)) == "2-0 0-1");
  CHECK(show(symmetrize_attention(f23, r32, am, Symmetrize::Reverse)) == "2-0 0-1 1-1");
  CHECK(show(symmetrize_attention(f23, r32, am, Symmetrize::Union, Combine::Product)) == "2-0 0-1 1-1");
  CHECK(parse_combine("none") == Combine::None);
  CHECK(std::string(combine_name(parse_combine("product"))) == "product");
  CHECK_THROWS_AS(parse_combine("sum"), UsageError);
}

TEST_CASE("CLI: align INPUT --reverse REV symmetrizes two records, scores them, refuses a wrong shape") {
  const auto dir = temp_dir("align_reverse");
  auto record = [&](const std::string& name, const Mat& w, std::vector<std::string> src, std::vector<std::string> tgt) {
    AttentionRecord r;
    AttentionTensor t("decoder.layer0.cross", 1, static_cast<int>(w.rows()), static_cast<int>(w.cols()), "target", "source");
    for (int q = 0; q < w.rows(); ++q)
      for (int k = 0; k < w.cols(); ++k) t.at(0, q, k) = w(q, k);
    r.tensors.push_back(t);
    r.tokens["source"] = std::move(src);
    r.tokens["target"] = std::move(tgt);
    save_record(dir / name, r);
    return (dir / name).string();
  };
  const std::string f = record("f.safetensors", kForward, {"a", "b", "c"}, {"x", "y", "z"});
  const std::string r = record("r.safetensors", kReverse, {"x", "y", "z"}, {"a", "b", "c"});
  spit(dir / "gold.txt", "0-0 1-1 2-2\n");
  auto i = run_cli("align '" + f + "' --reverse '" + r + "' --combine none --symmetrize intersect");
  CHECK_MESSAGE(i.code == 0, i.out);
  CHECK(i.out.find("0-0 2-2") != std::string::npos);
  // --combine none, default grow-diag-final-and; scored: |A| = 4, |S| = 3, |A∩S| = 3 -> AER 1 - 6/7
  const std::string gold = " --gold '" + (dir / "gold.txt").string() + "' --json";
  auto g = run_cli("align '" + f + "' --reverse '" + r + "' --combine none" + gold);
  CHECK_MESSAGE(g.code == 0, g.out);
  CHECK(g.out.find("\"aer\": 0.1428") != std::string::npos);
  CHECK(g.out.find("grow-diag-final-and") != std::string::npos);
  auto o = run_cli("align '" + f + "' --reverse '" + r + "' --combine none --symmetrize forward");
  CHECK(o.out.find("0-0 0-1 2-2") != std::string::npos);
  // the default: product, then grow-diag-final-and: the gold exactly
  auto p = run_cli("align '" + f + "' --reverse '" + r + "'" + gold);
  CHECK_MESSAGE(p.code == 0, p.out);
  CHECK(p.out.find("\"aer\": 0.0") != std::string::npos);
  CHECK(p.out.find("product") != std::string::npos);
  CHECK(run_cli("align '" + f + "' --reverse '" + r + "' --combine sum").code == 1);
  CHECK(run_cli("align '" + f + "' --combine product").code == 1);   // --combine needs --reverse
  // a reverse record that is not the transpose's shape: exit 2 naming it
  const std::string bad = record("bad.safetensors", mat(3, 2, {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f}), {"x", "y"},
                                 {"a", "b", "c"});
  auto b = run_cli("align '" + f + "' --reverse '" + bad + "'");
  CHECK(b.code == 2);
  CHECK(b.out.find("bad.safetensors") != std::string::npos);
  CHECK(run_cli("align '" + f + "' --reverse '" + r + "' --gold '" + (dir / "gold.txt").string() + "' --rank-heads").code == 1);
  CHECK(run_cli("align '" + f + "' --reverse '" + r + "' --symmetrize diag").code == 1);
}
