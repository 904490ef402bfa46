// Other people's corpora, first try (issue 14, items 1, 2, 4, 5): pre-tokenized text under a gold
// column, pairs dropped by --max-tokens, held-out splits, --from-corpus all, 1-based corpus gold.
#include <attnviz/data/corpus.hpp>
#include <attnviz/error.hpp>

#include <doctest/doctest.h>

#include <set>

#include "test_util.hpp"

using namespace attnviz;
using namespace attnviz::test;

TEST_CASE("a gold column over text the tokenizer would re-split gets a note naming --pretokenized") {
  auto dir = temp_dir("pretok");
  // Pre-tokenized English with "'s": the tokenizer would make it "'" "s" and shift every later link.
  spit(dir / "g.tsv", "John 's car\tla voiture de John\t0-3 2-1\n");
  // Gold counts the tokenizer's tokens by default (samples/real-de-gold.tsv does): not an error,
  // but a note naming --pretokenized, since this file's gold counts space-separated words.
  auto tok = read_corpus(dir / "g.tsv");
  REQUIRE(tok.notes.size() == 1);
  CHECK(tok.notes[0].find("--pretokenized") != std::string::npos);
  CHECK(tok.notes[0].find("line 1: ''s' -> ' s") != std::string::npos);
  auto c = read_corpus(dir / "g.tsv", {.pretokenized = true});
  REQUIRE(c.size() == 1);
  CHECK(c.pairs[0].source == std::vector<std::string>{"John", "'s", "car"});
  CHECK(c.pairs[0].gold->contains(2, 1));
  // Without a gold column, tokenizing is harmless and allowed; lowercasing keeps words whole.
  spit(dir / "t.tsv", "John 's car\tla voiture de John\n");
  CHECK(read_corpus(dir / "t.tsv").pairs[0].source.size() == 4);
  spit(dir / "l.tsv", "The Car\tLa Voiture\t0-0 1-1\n");
  CorpusOptions lower;
  lower.tokenizer.lowercase = true;
  CHECK(read_corpus(dir / "l.tsv", lower).pairs[0].source == std::vector<std::string>{"the", "car"});
}

TEST_CASE("--max-tokens: dropped pairs are counted, with the reason") {
  auto dir = temp_dir("maxtok");
  spit(dir / "c.tsv", "a b\tx y\nc d e f g\tz\n\t\nh\tw v u t s r\ni\tj\n");
  auto c = read_corpus(dir / "c.tsv", {.max_tokens = 3});
  CHECK(c.size() == 2);
  CHECK(c.dropped_long == 2);
  REQUIRE(c.notes.size() == 1);
  CHECK(c.notes[0].find("2 of 4 pairs") != std::string::npos);
  CHECK(c.notes[0].find("--max-tokens 3") != std::string::npos);
  CHECK(c.notes[0].find("longest: 6") != std::string::npos);
  // All dropped: the error says why instead of "no sentence pairs found".
  spit(dir / "long.tsv", "a b\tx y\nc d e\tz\n");
  CHECK_THROWS_WITH_AS(read_corpus(dir / "long.tsv", {.max_tokens = 1}), doctest::Contains("2 of 2 pairs"), InputError);
  CHECK(read_corpus(dir / "c.tsv").notes.empty());
}

TEST_CASE("held-out split: the file's last N, or N seeded random pairs; both keep file order") {
  ParallelCorpus c;
  for (int i = 0; i < 20; ++i) c.pairs.push_back({{std::to_string(i)}, {"x"}, std::nullopt});
  auto last = split_heldout(c, 5);
  REQUIRE(last.held.size() == 5);
  CHECK(last.train.size() == 15);
  CHECK(last.held.pairs.front().source[0] == "15");
  auto rnd = split_heldout(c, 5, 42);
  REQUIRE(rnd.held.size() == 5);
  CHECK(rnd.train.size() == 15);
  std::set<std::string> held;
  for (const auto& p : rnd.held.pairs) held.insert(p.source[0]);
  CHECK(held.size() == 5);
  CHECK(held != std::set<std::string>{"15", "16", "17", "18", "19"});
  for (const auto& p : rnd.train.pairs) CHECK(held.count(p.source[0]) == 0);
  for (size_t i = 1; i < rnd.held.size(); ++i)
    CHECK(std::stoi(rnd.held.pairs[i - 1].source[0]) < std::stoi(rnd.held.pairs[i].source[0]));
  // Same seed, same split; another seed, another split.
  auto again = split_heldout(c, 5, 42);
  for (size_t i = 0; i < 5; ++i) CHECK(again.held.pairs[i].source == rnd.held.pairs[i].source);
  auto other = split_heldout(c, 5, 43);
  std::set<std::string> held2;
  for (const auto& p : other.held.pairs) held2.insert(p.source[0]);
  CHECK(held2 != held);
  // Too small a corpus holds nothing out.
  CHECK(split_heldout(c, 10).held.size() == 0);
}

TEST_CASE("--from-corpus all selects every pair; indices are range-checked") {
  CHECK(parse_pair_selection({"all"}, 3) == std::vector<int>{0, 1, 2});
  CHECK(parse_pair_selection({"2", "0"}, 3) == std::vector<int>{2, 0});
  CHECK_THROWS_WITH_AS(parse_pair_selection({"3"}, 3), doctest::Contains("3 pairs"), UsageError);
  CHECK_THROWS_AS(parse_pair_selection({"x"}, 3), UsageError);
}

TEST_CASE("corpus gold read 0-based that never uses index 0 gets a note naming --gold-one-indexed") {
  auto dir = temp_dir("gold1");
  spit(dir / "g.tsv", "a b c\tx y z\t1-1 2-2 3-3\nd e\tv w\t1-2 2-1\n");
  // Index 3 lies past the 3-token sentence read 0-based: refused with the flag.
  CHECK_THROWS_WITH_AS(read_corpus(dir / "g.tsv"), doctest::Contains("--gold-one-indexed"), InputError);
  spit(dir / "h.tsv", "a b c d\tx y z w\t1-1 2-2 3-3\nd e f\tv w u\t1-2 2-1\n");
  auto c = read_corpus(dir / "h.tsv");
  REQUIRE(c.notes.size() == 1);
  CHECK(c.notes[0].find("--gold-one-indexed") != std::string::npos);
  auto c1 = read_corpus(dir / "h.tsv", {.one_indexed = true});
  CHECK(c1.notes.empty());
  CHECK(c1.pairs[0].gold->contains(0, 0));
}

TEST_CASE("CLI: train/eval/record translate print dropped pairs, take --gold-one-indexed, --pretokenized, --from-corpus all") {
  auto dir = temp_dir("cli_corpus");
  std::string train;
  for (int i = 0; i < 30; ++i) train += "the cat " + std::to_string(i % 5) + "\tle chat " + std::to_string(i % 5) + "\n";
  train += "a very long sentence that is much longer than the limit\tune phrase\n";
  spit(dir / "train.tsv", train);
  const std::string model = (dir / "m.safetensors").string();
  auto tr = run_cli("--quiet train translate --corpus '" + (dir / "train.tsv").string() +
                    "' --epochs 1 --embed 4 --hidden 4 --max-tokens 8 --heldout 5 --split-seed 3 -o '" + model + "'");
  REQUIRE_MESSAGE(tr.code == 0, tr.out);
  CHECK(tr.out.find("skipped 1 of 31 pairs") != std::string::npos);
  CHECK(tr.out.find("held-out 5 pairs") != std::string::npos);
  auto help = run_cli("train translate --help");
  CHECK(help.out.find("LAST N lines") != std::string::npos);
  // A 1-based gold: refused 0-based with the flag named, scored with --gold-one-indexed.
  spit(dir / "gold.tsv", "the cat 1\tle chat 1\t1-1 2-2 3-3\n");
  const std::string ev = "eval translate --model '" + model + "' --corpus '" + (dir / "gold.tsv").string() + "'";
  auto bad = run_cli(ev);
  CHECK(bad.code == 2);
  CHECK(bad.out.find("--gold-one-indexed") != std::string::npos);
  auto good = run_cli(ev + " --gold-one-indexed");
  CHECK_MESSAGE(good.code == 0, good.out);
  // Several models of one kind: each row is labelled by its file (the whole path when names repeat).
  fs::create_directories(dir / "sub");
  fs::copy_file(model, dir / "seed2.safetensors");
  fs::copy_file(model, dir / "sub" / "m.safetensors");
  auto many = run_cli("eval translate --model '" + model + "' --model '" + (dir / "seed2.safetensors").string() +
                      "' --model '" + (dir / "sub" / "m.safetensors").string() + "' --corpus '" +
                      (dir / "gold.tsv").string() + "' --gold-one-indexed");
  REQUIRE_MESSAGE(many.code == 0, many.out);
  std::vector<std::string> rows;
  for (size_t a = 0, b; (b = many.out.find('\n', a)) != std::string::npos; a = b + 1) rows.push_back(many.out.substr(a, b - a));
  REQUIRE(rows.size() >= 4);
  CHECK(rows[0].rfind("file", 0) == 0);
  CHECK_MESSAGE(rows[1].rfind(model + " ", 0) == 0, rows[1]);
  CHECK_MESSAGE(rows[2].rfind("seed2.safetensors ", 0) == 0, rows[2]);
  CHECK_MESSAGE(rows[3].rfind((dir / "sub" / "m.safetensors").string() + " ", 0) == 0, rows[3]);
  // Pre-tokenized text with a gold column: a note, then read with --pretokenized.
  spit(dir / "pre.tsv", "the cat 's\tle chat\t0-0 1-1\n");
  const std::string ev2 = "eval translate --model '" + model + "' --corpus '" + (dir / "pre.tsv").string() + "'";
  auto pre_note = run_cli(ev2);
  CHECK(pre_note.code == 0);
  CHECK(pre_note.out.find("pass --pretokenized") != std::string::npos);
  auto pre_ok = run_cli(ev2 + " --pretokenized");
  CHECK(pre_ok.code == 0);
  CHECK(pre_ok.out.find("pass --pretokenized") == std::string::npos);
  // --from-corpus all: one record per pair.
  spit(dir / "three.tsv", "the cat 1\tle chat 1\nthe cat 2\tle chat 2\nthe cat 3\tle chat 3\n");
  auto rec = run_cli("record translate --model '" + model + "' --corpus '" + (dir / "three.tsv").string() +
                     "' --from-corpus all -o '" + (dir / "r.safetensors").string() + "'");
  CHECK_MESSAGE(rec.code == 0, rec.out);
  CHECK(rec.out.find("3 record(s)") != std::string::npos);
}
