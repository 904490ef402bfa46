// Tests of alignment extraction (argmax, intersect, itermax, threshold), AER on hand-computed
// examples, 1-based Pharaoh files, records, and corpus BLEU-4.
#include <attnviz/analysis/alignment.hpp>
#include <attnviz/analysis/bleu.hpp>
#include <attnviz/error.hpp>
#include <attnviz/record/import.hpp>

#include <doctest/doctest.h>

#include <algorithm>

#include "test_util.hpp"

using namespace attnviz;
using namespace attnviz::test;

namespace {
Mat mat3(std::initializer_list<float> v) {
  Mat m(3, 3);
  auto it = v.begin();
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) m(r, c) = *it++;
  return m;
}
}  // namespace

TEST_CASE("AER, precision and recall on a hand-computed example") {
  // Gold S = {0-0, 1-1, 3-2}, possible 2?2 (P = S plus it). Predicted A = {0-0, 1-2, 2-2, 3-3}.
  // |A| = 4, |S| = 3, |A∩S| = 1 (0-0), |A∩P| = 2 (0-0, 2-2): AER = 1 - 3/7, P = 2/4, R = 1/3.
  auto gold = parse_pharaoh_line("0-0 1-1 3-2 2?2");
  auto pred = parse_pharaoh_line("0-0 1-2 2-2 3-3");
  AlignmentScore s;
  s.add(pred, gold);
  CHECK(s.predicted == 4);
  CHECK(s.sure == 3);
  CHECK(s.a_and_s == 1);
  CHECK(s.a_and_p == 2);
  CHECK(s.aer() == doctest::Approx(4.0 / 7.0));
  CHECK(s.precision() == doctest::Approx(0.5));
  CHECK(s.recall() == doctest::Approx(1.0 / 3.0));
  // Perfect prediction of the sure links: AER 0; corpus counts add up over sentences.
  auto perfect = score_alignments({parse_pharaoh_line("0-0 1-1 3-2"), pred}, {gold, gold});
  CHECK(perfect.predicted == 7);
  CHECK(perfect.a_and_s == 4);
  CHECK(perfect.a_and_p == 5);
  CHECK(perfect.aer() == doctest::Approx(1.0 - 9.0 / 13.0));
  AlignmentScore alone;
  alone.add(parse_pharaoh_line("0-0 1-1 3-2"), gold);
  CHECK(alone.aer() == doctest::Approx(0.0));
  CHECK_THROWS_AS(score_alignments({pred}, {gold, gold}), InputError);
}

TEST_CASE("extraction methods on a hand-made matrix") {
  // rows = target j, columns = source i
  Mat w = mat3({0.6f, 0.3f, 0.1f,  //
                0.5f, 0.4f, 0.1f,  //
                0.2f, 0.2f, 0.6f});
  CHECK(to_pharaoh(extract_alignment(w, {.method = AlignMethod::Argmax})) == "0-0 0-1 2-2");
  CHECK(to_pharaoh(extract_alignment(w, {.method = AlignMethod::Intersect})) == "0-0 2-2");
  // itermax: round 1 = intersect; round 2 searches w * mask where target 1 and source 1 are free:
  // [[0, .27, 0], [.45, .4, .09], [0, .18, 0]]. Mutual argmax there: (j1, i0) only (column i1's
  // max is j1, not j0), so the link 0-1 is added.
  CHECK(to_pharaoh(extract_alignment(w, {.method = AlignMethod::Itermax})) == "0-0 0-1 2-2");
  CHECK(to_pharaoh(extract_alignment(w, {.method = AlignMethod::Threshold, .threshold = 0.35f})) == "0-0 0-1 1-1 2-2");
  CHECK(parse_align_method("itermax") == AlignMethod::Itermax);
  CHECK_THROWS_AS(parse_align_method("bogus"), UsageError);
}

TEST_CASE("alignment matrix from the sample record drops nothing and matches the gold") {
  auto rec = import_record(sample("alignment_6x7.safetensors"));
  auto m = alignment_matrix(rec);
  CHECK(m.tensor == "decoder.layer0.cross");
  CHECK(m.weights.rows() == 6);
  CHECK(m.weights.cols() == 7);
  auto pred = extract_alignment(m.weights);
  auto gold = read_pharaoh_file(sample("alignment_6x7.gold"));
  REQUIRE(gold.size() == 1);
  auto s = score_alignments({pred}, gold);
  CHECK(s.aer() < 0.2);
  // specials are dropped and indices renumbered
  AttentionRecord r;
  AttentionTensor t("decoder.layer0.cross", 1, 3, 3, "target", "source");
  t.data = {0.1f, 0.8f, 0.1f, 0.7f, 0.2f, 0.1f, 0.1f, 0.1f, 0.8f};
  r.tensors.push_back(t);
  r.tokens["source"] = {"a", "b", "<eos>"};
  r.tokens["target"] = {"x", "y", "<eos>"};
  auto m2 = alignment_matrix(r);
  CHECK(m2.weights.rows() == 2);
  CHECK(m2.weights.cols() == 2);
  CHECK(to_pharaoh(extract_alignment(m2.weights)) == "1-0 0-1");
}

TEST_CASE("1-based Pharaoh files") {
  auto dir = temp_dir("pharaoh1");
  spit(dir / "a.txt", "1-1 2p3 3?2\n\n");
  auto a = read_pharaoh_file(dir / "a.txt", {.one_indexed = true});
  REQUIRE(a.size() == 2);
  CHECK(to_pharaoh(a[0]) == "0-0 1?2 2?1");
  CHECK(a[1].links.empty());
  CHECK(format_pharaoh(a[0], {.one_indexed = true}) == "1-1 2?3 3?2");
  spit(dir / "z.txt", "0-1\n");
  CHECK_THROWS_WITH_AS(read_pharaoh_file(dir / "z.txt", {.one_indexed = true}), doctest::Contains("line 1"), InputError);
  // --gold-all-sure: possible links read as sure (awesome-align's aer.py --allSure), with either base
  CHECK(to_pharaoh(read_pharaoh_file(dir / "a.txt", {.one_indexed = true, .flag = "", .all_sure = true})[0]) == "0-0 1-2 2-1");
  CHECK(to_pharaoh(read_pharaoh_file(dir / "a.txt", {.one_indexed = false, .flag = "", .all_sure = true})[0]) == "1-1 2-3 3-2");
}

TEST_CASE("corpus BLEU-4") {
  using S = std::vector<std::string>;
  auto same = corpus_bleu({S{"the", "cat", "sat", "on", "the", "mat"}}, {S{"the", "cat", "sat", "on", "the", "mat"}});
  CHECK(same.bleu == doctest::Approx(1.0));
  // p1 = 4/5, p2 = 3/4, p3 = 2/3, p4 = 1/2; c = 5 < r = 6: BP = exp(1 - 6/5).
  auto b = corpus_bleu({S{"a", "b", "c", "d", "e"}}, {S{"a", "b", "c", "d", "f", "g"}});
  CHECK(b.precisions[0] == doctest::Approx(0.8));
  CHECK(b.precisions[3] == doctest::Approx(0.5));
  CHECK(b.brevity_penalty == doctest::Approx(std::exp(-0.2)));
  CHECK(b.bleu == doctest::Approx(std::exp(-0.2) * std::pow(0.8 * 0.75 * (2.0 / 3.0) * 0.5, 0.25)));
  // clipping: "the the the" against "the cat" counts "the" once.
  auto c = corpus_bleu({S{"the", "the", "the"}}, {S{"the", "cat"}});
  CHECK(c.precisions[0] == doctest::Approx(1.0 / 3.0));
  CHECK(c.bleu == 0.0);
}

TEST_CASE("align CLI: record + gold, --score on files alone, bad input exits 2") {
  auto dir = temp_dir("align_cli");
  auto r = run_cli("align '" + sample("alignment_6x7.safetensors").string() + "' --gold '" +
                   sample("alignment_6x7.gold").string() + "'");
  CHECK(r.code == 0);
  CHECK(r.out.find("0-0 1-1 4-2 5-3 6-4 3-5") != std::string::npos);
  CHECK(r.out.find("AER 0.0000") != std::string::npos);
  spit(dir / "pred.txt", "1-1 2-3 3-3 4-4\n");   // 1-based: = 0-0 1-2 2-2 3-3
  spit(dir / "gold.txt", "1-1 2-2 4-3 3p3\n");   // 1-based: S = 0-0 1-1 3-2, P adds 2-2
  auto s = run_cli("align --score '" + (dir / "pred.txt").string() + "' --gold '" + (dir / "gold.txt").string() +
                   "' --one-indexed --json");
  CHECK(s.code == 0);
  CHECK(s.out.find("\"aer\": 0.5714") != std::string::npos);
  spit(dir / "two.txt", "0-0\n1-1\n");
  CHECK(run_cli("align --score '" + (dir / "two.txt").string() + "' --gold '" + (dir / "gold.txt").string() + "'").code == 2);
  spit(dir / "bad.txt", "0-x\n");
  auto b = run_cli("align --score '" + (dir / "bad.txt").string() + "' --gold '" + (dir / "gold.txt").string() + "'");
  CHECK(b.code == 2);
  CHECK(b.out.find("bad.txt") != std::string::npos);
  CHECK(run_cli("align --score x").code == 1);
  auto c = run_cli("corpus translate --synthetic 3 --seed 1");
  CHECK(c.code == 0);
  CHECK(std::count(c.out.begin(), c.out.end(), '\n') == 3);
}
