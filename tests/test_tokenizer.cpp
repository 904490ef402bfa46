// Tests of the tokenizer (punctuation, CJK, mixed scripts, lowercasing, UTF-8) and the Vocabulary.
#include <attnviz/error.hpp>
#include <attnviz/text/tokenizer.hpp>

#include <doctest/doctest.h>

using namespace attnviz;
using V = std::vector<std::string>;

TEST_CASE("whitespace and punctuation split") {
  CHECK(tokenize("Hello, world!") == V{"Hello", ",", "world", "!"});
  CHECK(tokenize("  a\tb \n c  ") == V{"a", "b", "c"});
  CHECK(tokenize("don't stop...") == V{"don", "'", "t", "stop", ".", ".", "."});
  CHECK(tokenize("(x+y)=2") == V{"(", "x", "+", "y", ")", "=", "2"});
  CHECK(tokenize("¿Qué? «Sí» — 3,5 €") == V{"¿", "Qué", "?", "«", "Sí", "»", "—", "3", ",", "5", "€"});
  CHECK(tokenize("Hello, world!", {.lowercase = false, .split_punctuation = false}) == V{"Hello,", "world!"});
  CHECK(tokenize("").empty());
  CHECK(tokenize("   ").empty());
}

TEST_CASE("CJK ideographs are one token each, kana and hangul stay in runs") {
  CHECK(tokenize("我喜欢猫。") == V{"我", "喜", "欢", "猫", "。"});
  CHECK(tokenize("「東京」に行く") == V{"「", "東", "京", "」", "に", "行", "く"});
  CHECK(tokenize("ひらがな") == V{"ひらがな"});
  CHECK(tokenize("나는 학생입니다.") == V{"나는", "학생입니다", "."});
  CHECK(tokenize("全角！？") == V{"全", "角", "！", "？"});
}

TEST_CASE("mixed scripts") {
  CHECK(tokenize("Я люблю Tokyo東京!") == V{"Я", "люблю", "Tokyo", "東", "京", "!"});
  CHECK(tokenize("αβγ, δ") == V{"αβγ", ",", "δ"});
  CHECK(tokenize("naïve café") == V{"naïve", "café"});
  CHECK(tokenize("a\u00A0b\u3000c") == V{"a", "b", "c"});  // no-break and ideographic spaces
}

TEST_CASE("lowercasing") {
  TokenizerOptions lo{.lowercase = true};
  CHECK(tokenize("The CAT Ärger ÉTÉ", lo) == V{"the", "cat", "ärger", "été"});
  CHECK(tokenize("ΑΘΗΝΑ МОСКВА Łódź", lo) == V{"αθηνα", "москва", "łódź"});
  CHECK(tokenize("東京 Tokyo", lo) == V{"東", "京", "tokyo"});
}

TEST_CASE("malformed UTF-8 never crashes and is replaced") {
  std::string bad = "ab\xFF" "cd \xE6\x88";  // stray byte, truncated 3-byte sequence
  auto t = tokenize(bad);
  REQUIRE(t.size() == 2);
  CHECK(t[0] == "ab\xEF\xBF\xBD" "cd");
  CHECK(utf8_valid(t[1]));
  CHECK_FALSE(utf8_valid(bad));
  CHECK(utf8_valid("我 a é"));
  CHECK(utf8_length("我a é") == 4);
  CHECK_FALSE(utf8_valid("\xC0\xAF"));        // overlong
  CHECK_FALSE(utf8_valid("\xED\xA0\x80"));    // surrogate
}

TEST_CASE("split_spaces splits on ASCII spaces only") {
  CHECK(split_spaces("das Haus , ja") == V{"das", "Haus", ",", "ja"});
  CHECK(split_spaces("don't\u00A0x") == V{"don't\u00A0x"});
  CHECK(join_tokens({"a", "b"}) == "a b");
}

TEST_CASE("vocabulary: specials, min-count, deterministic order, json round trip") {
  std::vector<V> sents = {{"b", "a", "a"}, {"c", "a", "b"}, {"d"}};
  auto v = Vocabulary::build(sents, {.min_count = 2});
  REQUIRE(v.size() == 6);
  CHECK(v.token(0) == "<pad>");
  CHECK(v.token(1) == "<unk>");
  CHECK(v.token(2) == "<bos>");
  CHECK(v.token(3) == "<eos>");
  CHECK(v.token(4) == "a");  // count 3
  CHECK(v.token(5) == "b");  // count 2
  CHECK(v.id("c") == Vocabulary::kUnk);
  CHECK(v.encode({"a", "zz"}, true, true) == std::vector<int>{2, 4, 1, 3});
  CHECK(v.decode({2, 4, 5, 3, 4}) == V{"a", "b"});
  auto w = Vocabulary::from_json(v.to_json(), "m");
  CHECK(w.tokens() == v.tokens());
  CHECK_THROWS_AS(Vocabulary::from_json("[\"a\"]", "m"), InputError);
  CHECK_THROWS_AS(Vocabulary::from_json("{", "m"), InputError);
  CHECK_THROWS_AS(Vocabulary::from_json("[\"<pad>\",\"<unk>\",\"<bos>\",\"<eos>\",\"x\",\"x\"]", "m"), InputError);
  CHECK(Vocabulary::build(sents, {.min_count = 1, .max_size = 5}).size() == 5);
}
