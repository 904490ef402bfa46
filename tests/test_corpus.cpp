// Tests of the parallel corpus reader/writer (TSV, --columns, gold, ||| lines) and the built-in generator.
#include <attnviz/data/corpus.hpp>
#include <attnviz/error.hpp>
#include <attnviz/text/tokenizer.hpp>

#include <doctest/doctest.h>

#include "test_util.hpp"

#include <set>

using namespace attnviz;
using namespace attnviz::test;
using V = std::vector<std::string>;

TEST_CASE("generator: hand-checked pairs and gold (seed 1)") {
  auto c = generate_synthetic({.count = 12, .seed = 1});
  REQUIRE(c.size() == 12);
  // Subordinate clause verb-final, adjective after noun, one word -> two, dropped articles,
  // articles possible-linked to the noun that decides their gender.
  const auto& p = c.pairs[2];
  CHECK(join_tokens(p.source) == "the big door finds the grandmother , when a child likes a table .");
  CHECK(join_tokens(p.target) == "die tuer riesig findet die gross mutter , wenn kind tisch mag .");
  CHECK(to_pharaoh(*p.gold) == "0-0 2?0 2-1 1-2 3-3 4-4 5?4 5-5 5-6 6-7 7-8 9-9 8?9 12-10 11?10 10-11 13-12");
  // Two words -> one (post office), negation moved, "does" possible, article dropped.
  const auto& q = c.pairs[4];
  CHECK(join_tokens(q.source) == "a letter does not carry a post office .");
  CHECK(join_tokens(q.target) == "brief traegt postamt nicht .");
  CHECK(to_pharaoh(*q.gold) == "1-0 0?0 4-1 2?1 6-2 7-2 5?2 3-3 8-4");
  // Separable particle sent to the end of the main clause.
  const auto& r = c.pairs[10];
  CHECK(join_tokens(r.source) == "the horse throws away the small horse .");
  CHECK(join_tokens(r.target) == "das pferd wirft das pferd klein weg .");
  CHECK(to_pharaoh(*r.gold) == "0-0 1?0 1-1 2-2 4-3 6?3 6-4 5-5 3-6 7-7");
}

TEST_CASE("generator: deterministic, every token covered, splits disjoint") {
  auto a = generate_synthetic({.count = 300, .seed = 7});
  auto b = generate_synthetic({.count = 300, .seed = 7});
  auto d = generate_synthetic({.count = 300, .seed = 8});
  int differ = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a.pairs[i].source == b.pairs[i].source);
    CHECK(a.pairs[i].target == b.pairs[i].target);
    CHECK(to_pharaoh(*a.pairs[i].gold) == to_pharaoh(*b.pairs[i].gold));
    differ += a.pairs[i].source != d.pairs[i].source;
  }
  CHECK(differ > 200);
  for (const auto& p : a.pairs) {
    std::set<int> src, tgt;
    std::set<std::pair<int, int>> links;
    for (const auto& l : p.gold->links) {
      CHECK(links.insert({l.source, l.target}).second);  // no link twice
      REQUIRE(l.source < static_cast<int>(p.source.size()));
      REQUIRE(l.target < static_cast<int>(p.target.size()));
      src.insert(l.source), tgt.insert(l.target);
    }
    CHECK(src.size() == p.source.size());  // every source token has a link (maybe possible)
    CHECK(tgt.size() == p.target.size());  // every target token has a link
  }
  auto train = generate_synthetic({.count = 2000, .seed = 3, .split = SyntheticSplit::Train});
  auto test = generate_synthetic({.count = 300, .seed = 99, .split = SyntheticSplit::Test});
  std::set<V> seen;
  for (const auto& p : train.pairs) seen.insert(p.source);
  for (const auto& p : test.pairs) CHECK(seen.count(p.source) == 0);
}

TEST_CASE("TSV reader: columns, gold, errors; writer round trip") {
  auto dir = temp_dir("corpus_tsv");
  spit(dir / "a.tsv", "Hello, world!\tHallo, Welt!\t0-0 1-1 2-2 3?3\n\nThe cat.\tDie Katze.\n");
  auto c = read_corpus(dir / "a.tsv");
  REQUIRE(c.size() == 2);
  CHECK(c.pairs[0].source == V{"Hello", ",", "world", "!"});
  CHECK(c.pairs[0].gold->links.size() == 4);
  CHECK_FALSE(c.pairs[1].gold.has_value());
  CHECK_FALSE(c.has_gold());

  // manythings / Tatoeba export: third column is attribution -> error hints at --columns, 1,2 works.
  spit(dir / "m.tsv", "Go.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM)\n");
  CHECK_THROWS_WITH_AS(read_corpus(dir / "m.tsv"), doctest::Contains("--columns 1,2"), InputError);
  CorpusOptions two;
  parse_columns("1,2", two);
  auto m = read_corpus(dir / "m.tsv", two);
  CHECK(m.pairs[0].target == V{"Va", "!"});
  CorpusOptions swapped;
  parse_columns("2,1", swapped);
  CHECK(read_corpus(dir / "m.tsv", swapped).pairs[0].source == V{"Va", "!"});
  CHECK_THROWS_AS(parse_columns("1", two), UsageError);
  CHECK_THROWS_AS(parse_columns("1,x", two), UsageError);

  spit(dir / "bad.tsv", "a b\tc d\t0-5\n");
  CHECK_THROWS_WITH_AS(read_corpus(dir / "bad.tsv"), doctest::Contains("line 1"), InputError);
  spit(dir / "one.tsv", "only one column\n");
  CHECK_THROWS_WITH_AS(read_corpus(dir / "one.tsv"), doctest::Contains("columns"), InputError);
  spit(dir / "utf.tsv", "a\xFF\tb\n");
  CHECK_THROWS_WITH_AS(read_corpus(dir / "utf.tsv"), doctest::Contains("UTF-8"), InputError);
  CorpusOptions one;
  one.one_indexed = true;
  spit(dir / "one_idx.tsv", "a b\tc d\t1-1 2?2\n");
  CHECK(to_pharaoh(*read_corpus(dir / "one_idx.tsv", one).pairs[0].gold) == "0-0 1?1");
  one.gold_all_sure = true;   // --gold-all-sure applies to a corpus's gold column too
  CHECK(to_pharaoh(*read_corpus(dir / "one_idx.tsv", one).pairs[0].gold) == "0-0 1-1");

  auto g = generate_synthetic({.count = 20, .seed = 2});
  write_corpus_tsv(dir / "g.tsv", g);
  CorpusOptions pre;
  pre.pretokenized = true;
  auto back = read_corpus(dir / "g.tsv", pre);
  REQUIRE(back.size() == 20);
  CHECK(back.has_gold());
  for (size_t i = 0; i < 20; ++i) {
    CHECK(back.pairs[i].source == g.pairs[i].source);
    CHECK(to_pharaoh(*back.pairs[i].gold) == to_pharaoh(*g.pairs[i].gold));
  }
}

TEST_CASE("source ||| target lines split on ASCII spaces only") {
  auto dir = temp_dir("corpus_bitext");
  spit(dir / "b.txt", "das Haus , ja ||| the house, yes\nx ||| y\n");
  auto c = read_corpus(dir / "b.txt");
  REQUIRE(c.size() == 2);
  CHECK(c.pairs[0].source == V{"das", "Haus", ",", "ja"});
  CHECK(c.pairs[0].target == V{"the", "house,", "yes"});
  auto b = read_bitext(dir / "b.txt");
  CHECK(b.size() == 2);
}

TEST_CASE("samples/real-de-gold.tsv: 114 real pairs whose hand-made gold fits the tokenizer") {
  // The reader rejects links outside either sentence, so reading it checks every index.
  auto c = read_corpus(std::filesystem::path(ATTNVIZ_SOURCE_DIR) / "samples/real-de-gold.tsv");
  REQUIRE(c.size() == 114);
  CHECK(c.has_gold());
  std::set<std::string> english;
  for (const auto& p : c.pairs) CHECK_MESSAGE(english.insert(join_tokens(p.source)).second, join_tokens(p.source));
  CHECK(c.pairs[15].source == V{"I", "'", "ll", "change", "it", "later"});
  CHECK(c.pairs[23].target == V{"Komprimierte", "Fehlersuchinformationen", "erzeugen", "."});
  CHECK(to_pharaoh(*c.pairs[23].gold) == "0-2 1-0 2-1 3-1 4-3");
  for (const auto& p : c.pairs) {
    CAPTURE(join_tokens(p.source));
    // Every target word is linked (sure or possible) to some source word; punctuation without a
    // counterpart (the comma German puts before an infinitive clause) may stay unlinked.
    for (int j = 0; j < static_cast<int>(p.target.size()); ++j) {
      size_t pos = 0;
      char32_t cp = 0;
      if (utf8_next(p.target[j], pos, cp) && is_punctuation(cp)) continue;
      bool linked = false;
      for (const auto& l : p.gold->links) linked |= l.target == j;
      CHECK(linked);
    }
    // No word pair is linked twice (a sure and a possible link for the same pair is a typo).
    std::set<std::pair<int, int>> seen;
    for (const auto& l : p.gold->links) CHECK(seen.insert({l.source, l.target}).second);
  }
}
