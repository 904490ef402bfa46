// Other people's alignment files, first try (issue 14, items 1, 3, 15): awesome-align's 0-based
// predictions against its 1-based gold, SimAlign's "id<TAB>links" gold, NaN rows of a record.
#include <attnviz/analysis/alignment.hpp>
#include <attnviz/error.hpp>
#include <attnviz/io/pharaoh.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "test_util.hpp"

using namespace attnviz;
using namespace attnviz::test;

namespace {

// A miniature of awesome-align's examples/: predictions 0-based (what awesome-align writes), gold
// 1-based with sure (i-j) and possible (ipj) links, as in its enfr.gold / roen.gold.
const char* kPred = "0-0 1-1 2-2\n0-1 1-1\n0-0 1-1 2-2\n";
const char* kGold = "1-1 2-2 3p3\n1-2 2-1\n1-1 2p2 2-3\n";
// By hand, gold read 1-based: S = {00,11 | 01,10 | 00,12} (6 links), P = S + {22 | - | 11}.
// A = 8 links; A∩S = 2 + 1 + 1 = 4; A∩P = 3 + 1 + 2 = 6.
// AER = 1 - (4 + 6) / (8 + 6) = 2/7 = 0.2857; precision 6/8; recall 4/6.
// Gold read 0-based by mistake: A∩S = 3, A∩P = 4, AER = 1 - 7/14 = 0.5.

void write_pair(const fs::path& dir) {
  spit(dir / "pred.txt", kPred);
  spit(dir / "gold.txt", kGold);
}

}  // namespace

TEST_CASE("awesome-align miniature: 0-based predictions against 1-based gold give the hand-computed AER") {
  auto dir = temp_dir("aer_mini");
  write_pair(dir);
  auto pred = read_pharaoh_file(dir / "pred.txt");
  auto gold = read_pharaoh_file(dir / "gold.txt", {.one_indexed = true});
  auto s = score_alignments(pred, gold);
  CHECK(s.predicted == 8);
  CHECK(s.sure == 6);
  CHECK(s.a_and_s == 4);
  CHECK(s.a_and_p == 6);
  CHECK(s.aer() == doctest::Approx(2.0 / 7.0));
  CHECK(s.precision() == doctest::Approx(0.75));
  CHECK(s.recall() == doctest::Approx(4.0 / 6.0));
  // The silent wrong number the issue reports: both read 0-based.
  auto wrong = score_alignments(pred, read_pharaoh_file(dir / "gold.txt"));
  CHECK(wrong.aer() == doctest::Approx(0.5));
}

TEST_CASE("a file read 0-based that never uses index 0 gets a hint naming the flag") {
  auto dir = temp_dir("aer_hint");
  write_pair(dir);
  const PharaohOptions zero{.one_indexed = false, .flag = "--gold-one-indexed"};
  auto gold0 = read_pharaoh_file(dir / "gold.txt", zero);
  auto hints = pharaoh_index_hints(gold0, "gold.txt", zero);
  REQUIRE(hints.size() == 1);
  CHECK(hints[0].find("--gold-one-indexed") != std::string::npos);
  CHECK(hints[0].find("gold.txt") != std::string::npos);
  // The 0-based predictions use index 0: no hint; read 1-based: no hint either.
  CHECK(pharaoh_index_hints(read_pharaoh_file(dir / "pred.txt"), "pred.txt", zero).empty());
  const PharaohOptions one{.one_indexed = true, .flag = "--gold-one-indexed"};
  CHECK(pharaoh_index_hints(read_pharaoh_file(dir / "gold.txt", one), "gold.txt", one).empty());
}

TEST_CASE("a link past the end names the flag when the file fits 1-based") {
  // 2 source x 2 target tokens; "1-2 2-1" read 0-based puts links at index 2.
  std::vector<Alignment> a = {parse_pharaoh_line("1-2 2-1")};
  const PharaohOptions zero{.one_indexed = false, .flag = "--gold-one-indexed"};
  CHECK_THROWS_WITH_AS(check_alignments_fit(a, {{2, 2}}, "g.txt", zero), doctest::Contains("--gold-one-indexed"),
                       InputError);
  // A link far outside (not a 1-based file) is refused without the hint.
  std::vector<Alignment> far = {parse_pharaoh_line("0-0 7-1")};
  try {
    check_alignments_fit(far, {{2, 2}}, "g.txt", zero);
    FAIL("no error for a link outside the matrix");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("one-indexed") == std::string::npos);
    CHECK(std::string(e.what()).find("line 1") != std::string::npos);
  }
  CHECK_NOTHROW(check_alignments_fit({parse_pharaoh_line("0-1 1-0")}, {{2, 2}}, "g.txt", zero));
}

TEST_CASE("CLI: align --score --gold-all-sure counts the gold's possible links as sure (aer.py --allSure)") {
  auto dir = temp_dir("aer_all_sure");
  write_pair(dir);
  const std::string files = " --score '" + (dir / "pred.txt").string() + "' --gold '" + (dir / "gold.txt").string() + "'";
  // By hand, gold read 1-based with every link sure: S = P = {00,11,22 | 01,10 | 00,11,12} (8 links).
  // A = 8 links; A∩S = A∩P = 3 + 1 + 2 = 6; AER = 1 - 12/16 = 0.25 (0.2857 with sure/possible kept).
  auto r = run_cli("align" + files + " --gold-one-indexed --gold-all-sure");
  CHECK(r.code == 0);
  CHECK(r.out.find("|S|=8 ") != std::string::npos);
  CHECK(r.out.find("|A∩S|=6 ") != std::string::npos);
  CHECK(r.out.find("AER 0.2500") != std::string::npos);
}

TEST_CASE("CLI: align --score with --gold-one-indexed, the hint without it, and --one-indexed on a 0-based file") {
  auto dir = temp_dir("aer_cli");
  write_pair(dir);
  const std::string files = " --score '" + (dir / "pred.txt").string() + "' --gold '" + (dir / "gold.txt").string() + "'";
  auto ok = run_cli("align" + files + " --gold-one-indexed");
  CHECK(ok.code == 0);
  CHECK(ok.out.find("AER 0.2857") != std::string::npos);
  CHECK(ok.out.find("warning") == std::string::npos);
  auto hint = run_cli("align" + files);
  CHECK(hint.code == 0);
  CHECK(hint.out.find("AER 0.5000") != std::string::npos);
  CHECK(hint.out.find("--gold-one-indexed") != std::string::npos);
  // --one-indexed reads both as 1-based: the predictions' index 0 is refused, naming the file.
  auto both = run_cli("align" + files + " --one-indexed");
  CHECK(both.code == 2);
  CHECK(both.out.find("pred.txt") != std::string::npos);
  CHECK(both.out.find("index 0") != std::string::npos);
  // --pred-one-indexed: predictions 1-based (shifted by one here: a 1-based gold read as such).
  auto p1 = run_cli("align --score '" + (dir / "gold.txt").string() + "' --gold '" + (dir / "gold.txt").string() +
                    "' --pred-one-indexed --gold-one-indexed");
  CHECK(p1.code == 0);
  CHECK(p1.out.find("recall 1.0000") != std::string::npos);
}

TEST_CASE("CLI: render heatmap --gold with a 1-based file: refused with the flag, drawn with it") {
  auto dir = temp_dir("aer_render");
  // samples/alignment_6x7.gold shifted to 1-based: 7 source x 6 target tokens, links reach index 7.
  spit(dir / "gold1.txt", "1-1 2-2 3?3 4-6 5-3 6-4 7-5\n");
  const std::string base = "render heatmap '" + sample("alignment_6x7.safetensors").string() +
                           "' --tensor decoder.layer0.cross --gold '" + (dir / "gold1.txt").string() + "' -o '" +
                           (dir / "h.png").string() + "'";
  auto bad = run_cli(base);
  CHECK(bad.code == 2);
  CHECK(bad.out.find("--gold-one-indexed") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "h.png"));
  auto good = run_cli(base + " --gold-one-indexed");
  CHECK(good.code == 0);
  CHECK(good.out.find("warning") == std::string::npos);
  CHECK(fs::exists(dir / "h.png"));
}

TEST_CASE("SimAlign gold: an id column before a tab is skipped") {
  auto a = parse_pharaoh_line("3\t0-1 0p0 1-2");
  REQUIRE(a.links.size() == 3);
  CHECK(a.links[0] == AlignmentLink{0, 1, true});
  CHECK(a.links[1] == AlignmentLink{0, 0, false});
  CHECK(to_pharaoh(parse_pharaoh_line("en-de.7\t1-0 2-1")) == "1-0 2-1");
  CHECK(parse_pharaoh_line("4\t").links.empty());
  // Links separated by tabs (no id) still parse as links.
  CHECK(to_pharaoh(parse_pharaoh_line("0-0\t1-1")) == "0-0 1-1");
  auto dir = temp_dir("simalign");
  spit(dir / "sample.gold", "0\t0-0 1-1 2-2\n1\t1-0 2-1\n");
  auto all = read_pharaoh(dir / "sample.gold");
  REQUIRE(all.size() == 2);
  CHECK(to_pharaoh(all[1]) == "1-0 2-1");
  auto r = run_cli("align --score '" + (dir / "sample.gold").string() + "' --gold '" + (dir / "sample.gold").string() + "'");
  CHECK(r.code == 0);
  CHECK(r.out.find("AER 0.0000") != std::string::npos);
}

TEST_CASE("rows with NaN get no links and are counted") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Mat w(3, 3);
  w << nan, nan, nan,  //
      0.1f, 0.8f, 0.1f,  //
      0.2f, nan, 0.7f;
  CHECK(nan_rows(w) == 2);
  CHECK(to_pharaoh(extract_alignment(w, {.method = AlignMethod::Argmax})) == "1-1");
  CHECK(to_pharaoh(extract_alignment(w, {.method = AlignMethod::Intersect})) == "1-1");
  // Itermax may add a second link for the one valid row (source 0 is free), never one on a NaN row.
  for (const auto& l : extract_alignment(w, {.method = AlignMethod::Itermax}).links) CHECK(l.target == 1);
  CHECK(to_pharaoh(extract_alignment(w, {.method = AlignMethod::Threshold, .threshold = 0.5f})) == "1-1");
}

TEST_CASE("CLI: align on a record with NaN rows says how many it skipped") {
  auto dir = temp_dir("nan_rows");
  spit(dir / "a.json", R"({"source_tokens": ["a", "b", "c"], "target_tokens": ["x", "y"],
                           "cross_attention": [[NaN, NaN, NaN], [0.1, 0.8, 0.1]]})");
  auto r = run_cli("align '" + (dir / "a.json").string() + "'");
  CHECK(r.code == 0);
  CHECK(r.out.find("1-1") != std::string::npos);
  CHECK(r.out.find("0-0") == std::string::npos);
  CHECK(r.out.find("1 of 2 target row(s)") != std::string::npos);
}
