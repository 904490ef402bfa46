// Tests of the text-classification data: fortune file parsing, word tokens, TSV io, stratified split.
#include <attnviz/error.hpp>
#include <attnviz/data/fortunes.hpp>

#include <doctest/doctest.h>

#include <cstdlib>

#include <algorithm>

#include "test_util.hpp"

using namespace attnviz;

TEST_CASE("fortune entries: '%' separators, attributions dropped, whitespace collapsed") {
  const std::string file =
      "A hacker does for love what\nothers would not do for money.\n"
      "%\n"
      "Cheese -- milk's leap toward immortality.\n"
      "\t\t-- Clifton Fadiman, \"Any Number Can Play\"\n"
      "\t\tsecond attribution line\n"
      "%\n"
      "%\n"
      "\"You know?\"\n-- So I hit him.\n"
      "    -- attributed to Ray Bradbury\r\n"
      "%\r\n"
      "Last entry without newline";
  auto e = parse_fortune_entries(file, "mem");
  REQUIRE(e.size() == 4);
  CHECK(e[0] == "A hacker does for love what others would not do for money.");
  CHECK(e[1] == "Cheese -- milk's leap toward immortality.");  // inline "--" is text, not attribution
  CHECK(e[2] == "\"You know?\" -- So I hit him.");             // unindented "--" line is kept
  CHECK(e[3] == "Last entry without newline");
}

TEST_CASE("fortune entries: invalid UTF-8 is an InputError naming the file") {
  std::string bad = "ok\n%\nbad \xC3\x28 byte\n";
  CHECK_THROWS_WITH_AS(parse_fortune_entries(bad, "cat/food"), doctest::Contains("cat/food"), InputError);
}

TEST_CASE("word tokens: fortune text split into words and punctuation, case kept, UTF-8") {
  auto e = parse_fortune_entries("Cheese -- milk's leap,\n\ttoward (immortality)!  Café\n%\n", "mem");
  REQUIRE(e.size() == 1);
  auto t = word_tokens(e[0]);
  std::vector<std::string> want = {"Cheese", "-", "-", "milk", "'", "s", "leap", ",", "toward",
                                   "(", "immortality", ")", "!", "Café"};
  CHECK(t == want);
  CHECK(word_tokens("  ").empty());
  CHECK(is_word_token("milk"));
  CHECK(is_word_token("42"));
  CHECK(is_word_token("Café"));
  CHECK_FALSE(is_word_token(","));
  CHECK_FALSE(is_word_token("\xE2\x80\x94"));  // em dash
  CHECK(fold_case("Lisp-Hacker") == "lisp-hacker");
  CHECK(fold_case("CAFÉ") == "café");
}

// Needs Debian's fortunes package: skipped by doctest when absent; CTest's test_fortunes_optional
// runs it with --no-skip and exits 77 (CTest: Skipped) then, so a missing package never passes.
const bool kHaveFortunes = std::filesystem::exists(FortunesOptions{}.dir / "computers");

TEST_CASE("the installed fortunes package gives five learnable classes" * doctest::test_suite("optional") *
          doctest::skip(!kHaveFortunes)) {
  FortunesOptions opt;
  if (!kHaveFortunes) {
    MESSAGE("SKIP: the fortunes package is not installed (" << opt.dir << ")");
    std::exit(77);
  }
  TextDataset ds = load_fortunes(opt);
  REQUIRE(ds.labels == default_fortune_categories());
  auto n = ds.class_counts();
  for (int c : n) CHECK(c >= 150);
  opt.max_per_class = 100;
  auto capped = load_fortunes(opt);
  CHECK(capped.class_counts() == std::vector<int>(5, 100));
  for (const auto& t : ds.texts) {
    CHECK(t.find('\n') == std::string::npos);
    CHECK(t.find('\t') == std::string::npos);
  }
  opt.categories = {"computers", "no-such-category"};
  opt.max_per_class = 0;
  CHECK_THROWS_WITH_AS(load_fortunes(opt), doctest::Contains("no-such-category"), InputError);
}

TEST_CASE("TSV: round trip, comments, errors with line numbers") {
  TextDataset ds;
  ds.add("food", "Cheese is\tgood");
  ds.add("law", "A lawyer\nwalks in");
  ds.add("food", "Bread");
  std::string tsv = format_text_tsv(ds);
  CHECK(tsv == "food\tCheese is good\nlaw\tA lawyer walks in\nfood\tBread\n");
  auto back = parse_text_tsv("# comment\n\n" + tsv, "mem.tsv");
  CHECK(back.labels == std::vector<std::string>{"food", "law"});
  CHECK(back.y == std::vector<int>{0, 1, 0});
  CHECK(back.texts[1] == "A lawyer walks in");
  CHECK_THROWS_WITH_AS(parse_text_tsv("food\tok\nno tab here\n", "x.tsv"), doctest::Contains("x.tsv: line 2"),
                       InputError);
  CHECK_THROWS_WITH_AS(parse_text_tsv("\tno label\n", "x.tsv"), doctest::Contains("empty label"), InputError);
  CHECK_THROWS_WITH_AS(parse_text_tsv("lab\t  \n", "x.tsv"), doctest::Contains("empty text"), InputError);
  CHECK_THROWS_AS(parse_text_tsv("", "x.tsv"), InputError);

  auto dir = test::temp_dir("tsv");
  write_text_tsv(dir / "d.tsv", ds);
  CHECK(read_text_tsv(dir / "d.tsv").texts == back.texts);
  CHECK_THROWS_WITH_AS(read_text_tsv(dir / "missing.tsv"), doctest::Contains("missing.tsv"), InputError);
}

TEST_CASE("stratified split: class proportions kept, seeded, disjoint and complete") {
  TextDataset ds;
  for (int i = 0; i < 100; ++i) ds.add("a", "a" + std::to_string(i));
  for (int i = 0; i < 30; ++i) ds.add("b", "b" + std::to_string(i));
  for (int i = 0; i < 3; ++i) ds.add("c", "c" + std::to_string(i));
  auto sp = stratified_split(ds, 0.2, 7);
  CHECK(sp.test.class_counts() == std::vector<int>{20, 6, 1});
  CHECK(sp.train.class_counts() == std::vector<int>{80, 24, 2});
  CHECK(sp.train.labels == ds.labels);
  std::vector<std::string> all = sp.train.texts;
  all.insert(all.end(), sp.test.texts.begin(), sp.test.texts.end());
  std::sort(all.begin(), all.end());
  std::vector<std::string> want = ds.texts;
  std::sort(want.begin(), want.end());
  CHECK(all == want);
  for (std::size_t i = 0; i < sp.test.size(); ++i)
    CHECK(sp.test.texts[i][0] == sp.test.labels[sp.test.y[i]][0]);  // labels travel with texts

  auto again = stratified_split(ds, 0.2, 7);
  CHECK(again.test.texts == sp.test.texts);
  auto other = stratified_split(ds, 0.2, 8);
  CHECK(other.test.texts != sp.test.texts);
  CHECK_THROWS_AS(stratified_split(ds, 1.0, 7), UsageError);
}
