// LM tokenizers: SentencePiece BPE with byte fallback on stories260K's real vocabulary (known ids,
// round trips) and GPT-2 byte-level BPE on a tiny hand-made vocabulary (hand-computed answers).
#include <doctest/doctest.h>

#include "test_util.hpp"

#include <attnviz/error.hpp>
#include <attnviz/io/gguf.hpp>
#include <attnviz/text/lm_tokenizer.hpp>

#include <cstdlib>
#include <random>

using namespace attnviz;
using namespace attnviz::test;

namespace {

const std::filesystem::path kStories = shared_models_dir() / "stories260K" / "stories260K.gguf";
const bool kHaveStories = std::filesystem::exists(kStories);

LmTokenizer stories_tokenizer() {
  const GgufFile f = GgufFile::open(kStories);
  LmVocab v;
  v.model = f.get_string("tokenizer.ggml.model");
  v.tokens = f.get_string_array("tokenizer.ggml.tokens");
  v.scores = f.get_float_array("tokenizer.ggml.scores");
  for (auto t : f.get_int_array("tokenizer.ggml.token_type")) v.types.push_back(static_cast<std::int32_t>(t));
  v.bos = static_cast<int>(f.get_int("tokenizer.ggml.bos_token_id"));
  v.eos = static_cast<int>(f.get_int("tokenizer.ggml.eos_token_id"));
  v.unk = static_cast<int>(f.get_int("tokenizer.ggml.unknown_token_id", -1));
  return LmTokenizer(std::move(v));
}

// GPT-2's byte -> code point table, written out independently of the tokenizer: printable bytes
// stand for themselves, bytes 0x00-0x20, 0x7F-0xA0 and 0xAD take 256, 257, ... in order.
std::string byte_char(int b) {
  char32_t cp;
  if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) cp = b;
  else if (b <= 0x20) cp = 256 + b;
  else if (b <= 0xA0) cp = 256 + 33 + (b - 0x7F);
  else cp = 256 + 33 + 34;  // 0xAD
  std::string s;
  if (cp < 0x80) s += static_cast<char>(cp);
  else s += static_cast<char>(0xC0 | (cp >> 6)), s += static_cast<char>(0x80 | (cp & 0x3F));
  return s;
}

// Ids 0..255: the single bytes (id = byte value); then a few merges.
LmTokenizer tiny_gpt2() {
  LmVocab v;
  v.model = "gpt2";
  for (int b = 0; b < 256; ++b) v.tokens.push_back(byte_char(b));
  v.tokens.insert(v.tokens.end(), {"Ġt", "he", "Ġthe", "ll", "llo", "<|endoftext|>"});  // 256..261
  v.types.assign(v.tokens.size(), 1);
  v.types[261] = 3;
  v.merges = {"Ġ t", "h e", "Ġt he", "l l", "ll o"};
  v.bos = v.eos = 261;
  v.add_bos = false;
  return LmTokenizer(std::move(v));
}

}  // namespace

TEST_CASE("lm tokenizer: GPT-2's byte table as written in the test matches the known letters") {
  CHECK(byte_char(' ') == "Ġ");
  CHECK(byte_char('\n') == "Ċ");
  CHECK(byte_char(0x7F) == "ġ");
  CHECK(byte_char(0xAD) == "Ń");
  CHECK(byte_char('a') == "a");
}

TEST_CASE("lm tokenizer: gpt2 byte-level BPE, hand-computed answers") {
  const LmTokenizer t = tiny_gpt2();
  CHECK(t.model() == "gpt2");
  CHECK(t.size() == 262);
  // "the" -> t, he (no "t he" merge);  " hello" -> Ġ, he, ll -> Ġ, he, llo.
  CHECK(t.encode("the hello", false) == std::vector<int>{116, 257, 32, 257, 260});
  // Two spaces: \s+(?!\S) takes the first space alone, the second starts " the" -> Ġt, he -> Ġthe.
  CHECK(t.encode("the  the", false) == std::vector<int>{116, 257, 32, 258});
  // Contractions, numbers and punctuation are separate pre-tokens.
  CHECK(t.encode("it's 42!", false) == std::vector<int>{105, 116, 39, 115, 32, 52, 50, 33});
  // Non-ASCII: é = C3 A9, each byte its own token here.
  CHECK(t.encode("é", false) == std::vector<int>{0xC3, 0xA9});
  CHECK(t.encode("", true) == std::vector<int>{261});
  CHECK(t.encode("x", true) == std::vector<int>{261, 120});
  CHECK(t.decode(std::vector<int>{116, 257, 32, 257, 260}) == "the hello");
  CHECK(t.decode(-1, 258) == " the");
  CHECK(t.decode(-1, 261).empty());  // control tokens add no text
  CHECK(t.decode(-1, 10) == "\n");
  CHECK(t.display(32) == "·");
  CHECK(t.display(258) == "·the");
  CHECK(t.display(10) == "\\x0A");
  CHECK(t.display(0xC3) == "\\xC3");  // half a character
  CHECK(t.display(261) == "<|endoftext|>");
  CHECK_THROWS_AS(t.decode(-1, 262), InputError);
  CHECK_THROWS_AS(t.display(-1), InputError);
}

TEST_CASE("lm tokenizer: gpt2 round trips any bytes, invalid UTF-8 included") {
  const LmTokenizer t = tiny_gpt2();
  const std::vector<std::string> fixed = {"Hello, World!", "  two leading", "trailing   ", "tab\tand\nnewline\r\n",
                                          "ünïcödé 猫 😀 ok", "I'll've 'd 's", "\xFF\xFE bad \xC3", "a1b2 33 !!! ?"};
  for (const auto& s : fixed) {
    INFO(s);
    CHECK(t.decode(t.encode(s, false)) == s);
  }
  std::mt19937 rng(5);
  for (int i = 0; i < 200; ++i) {
    std::string s;
    const int n = static_cast<int>(rng() % 24);
    for (int j = 0; j < n; ++j) s += static_cast<char>(rng() % 256);
    CHECK(t.decode(t.encode(s, false)) == s);
  }
}

TEST_CASE("lm tokenizer: inconsistent vocabularies are refused with a message") {
  LmVocab v;
  v.model = "bert";
  v.tokens = {"a"};
  CHECK_THROWS_WITH_AS(LmTokenizer{v}, doctest::Contains("model 'bert' is not supported"), InputError);
  v.model = "llama";
  CHECK_THROWS_WITH_AS(LmTokenizer{v}, doctest::Contains("0 scores for 1 tokens"), InputError);
  v.scores = {0.f};
  v.bos = 3;
  CHECK_THROWS_WITH_AS(LmTokenizer{v}, doctest::Contains("bos id 3 is outside the vocabulary of 1"), InputError);
  v.bos = -1;
  v.types = {1, 1};
  CHECK_THROWS_WITH_AS(LmTokenizer{v}, doctest::Contains("2 token types for 1 tokens"), InputError);
  v.types.clear();
  v.tokens.clear();
  v.scores.clear();
  CHECK_THROWS_WITH_AS(LmTokenizer{v}, doctest::Contains("the vocabulary is empty"), InputError);
  LmVocab g;
  g.model = "gpt2";
  g.tokens = {"a", "b"};
  g.merges = {"ab"};
  CHECK_THROWS_WITH_AS(LmTokenizer{g}, doctest::Contains("merge #0 \"ab\" is not two tokens"), InputError);
  // A byte with no token and no unknown token.
  LmVocab l;
  l.model = "llama";
  l.tokens = {"▁", "a"};
  l.scores = {0.f, 0.f};
  const LmTokenizer t(l);
  CHECK(t.encode("a", false) == std::vector<int>{0, 1});
  CHECK_THROWS_WITH_AS(t.encode("b", false), doctest::Contains("byte 0x62 has no token"), InputError);
}

TEST_CASE("lm tokenizer: llama BPE on a tiny vocabulary, merge order by score") {
  // Pieces: ▁ a b ab ▁a ▁ab, scores make "ab" merge before "▁a": "▁ab" then wins over "▁a" + "b".
  LmVocab v;
  v.model = "llama";
  v.tokens = {"<unk>", "<s>", "</s>", "<0x0A>", "▁", "a", "b", "ab", "▁a", "▁ab", "ba"};
  v.scores = {0, 0, 0, 0, -1, -2, -3, -0.5f, -0.7f, -0.9f, -0.1f};
  v.types = {2, 3, 3, 6, 1, 1, 1, 1, 1, 1, 1};
  v.bos = 1, v.eos = 2, v.unk = 0;
  const LmTokenizer t(v);
  // "▁ab": pairs ▁a (-0.7), ab (-0.5): ab first -> ▁ + ab -> ▁ab (-0.9).
  CHECK(t.encode("ab", true) == std::vector<int>{1, 9});
  // "▁aba": pairs ▁a -0.7, ab -0.5, ba -0.1 -> ba first -> ▁, a, ba ... ▁a -> ▁a, ba.
  CHECK(t.encode("aba", false) == std::vector<int>{8, 10});
  // "▁bab": ba (-0.1) at 1-2 and ab (-0.5) at 2-3: ba first -> ▁ ba b -> nothing merges.
  CHECK(t.encode("bab", false) == std::vector<int>{4, 10, 6});
  // "▁aa": only ▁a is a token -> ▁a, a.
  CHECK(t.encode("aa", false) == std::vector<int>{8, 5});
  // Newline through its byte token, an unknown character through <unk> (no byte token for it).
  CHECK(t.encode("a\n", false) == std::vector<int>{8, 3});
  CHECK(t.encode("c", false) == std::vector<int>{4, 0});
  CHECK(t.decode(1, 9) == "ab");  // leading space dropped after BOS
  CHECK(t.decode(5, 9) == " ab");
  CHECK(t.decode(-1, 3) == "\n");
  CHECK(t.decode(-1, 1).empty());
  CHECK(t.display(9) == "·ab");
  CHECK(t.display(3) == "\\x0A");
  CHECK(t.display(1) == "<s>");
  CHECK(t.display(0) == "<unk>");
}

TEST_CASE("lm tokenizer: stories260K llama vocabulary, known ids" * doctest::test_suite("models") *
          doctest::skip(!kHaveStories)) {
  require_shared_model(kStories);
  const LmTokenizer t = stories_tokenizer();
  CHECK(t.model() == "llama");
  CHECK(t.size() == 512);
  CHECK(t.bos() == 1);
  CHECK(t.eos() == 2);
  // By hand from the vocabulary: ▁t (score 0) merges first, ▁O+n -> ▁On, c+e -> ce, ▁On+ce -> ▁Once
  // (403); ▁up + on -> ▁upon (407); ▁a (261); ▁t + i·m·e (im, ime) -> ▁time (378).
  CHECK(t.encode("Once upon a time", true) == std::vector<int>{1, 403, 407, 261, 378});
  // Cross-checked with a separate Python implementation of llama2.c's encoder (per-character lookup,
  // byte fallback, then the best-scoring merge until none).
  CHECK(t.encode("Lily and Tim were happy.", true) == std::vector<int>{1, 317, 269, 326, 382, 276, 393, 426});
  CHECK(t.encode("Hello world!", true) == std::vector<int>{1, 346, 306, 414, 263, 304, 341, 443});
  CHECK(t.encode(" leading", true) == std::vector<int>{1, 410, 278, 411, 380, 299});
  CHECK(t.encode("trailing  ", true) == std::vector<int>{1, 259, 420, 412, 290, 299, 410, 410});
  CHECK(t.encode("a  b", true) == std::vector<int>{1, 261, 410, 268});
  // Byte fallback: 😀 = F0 9F 98 80 -> <0xF0> ... at ids 3 + byte.
  CHECK(t.encode("😀", true) == std::vector<int>{1, 410, 243, 162, 155, 131});
  CHECK(t.encode("猫 café", true) == std::vector<int>{1, 410, 234, 143, 174, 280, 412, 431, 485});
  CHECK(t.encode("The little dog said, \"Hi!\"\n\nOne day.", true) ==
        std::vector<int>{1, 291, 376, 400, 428, 336, 432, 313, 440, 417, 443, 436, 13, 13, 441, 416, 411, 328, 426});
  CHECK(t.encode("€5 – ok…", true) == std::vector<int>{1, 410, 503, 480, 410, 476, 334, 433, 486});
  CHECK(t.encode("x<s>y", true) == std::vector<int>{1, 410, 444, 504, 419, 505, 422});  // no special-token parsing
  CHECK(t.encode("", true) == std::vector<int>{1});
  CHECK(t.encode("", false).empty());
  CHECK(t.encode("Lily", false) == std::vector<int>{317});
  // Decoding: llama2.c's rules.
  CHECK(t.decode(1, 403) == "Once");
  CHECK(t.decode(403, 407) == " upon");
  CHECK(t.decode(-1, 13) == "\n");
  CHECK(t.decode(-1, 2).empty());
  CHECK(t.display(403) == "·Once");
  CHECK(t.display(1) == "<s>");
  CHECK(t.display(13) == "\\x0A");
  CHECK(t.display(3 + 'A') == "A");
  CHECK(t.display(3 + 0xF0) == "\\xF0");
  CHECK(t.display(410) == "·");
}

TEST_CASE("lm tokenizer: stories260K round trips (UTF-8, emoji, spaces, invalid bytes)" *
          doctest::test_suite("models") * doctest::skip(!kHaveStories)) {
  require_shared_model(kStories);
  const LmTokenizer t = stories_tokenizer();
  const std::vector<std::string> fixed = {
      "Once upon a time, there was a little girl named Lily.", "  two leading spaces", "trailing spaces   ",
      " ", "\n", "tabs\tand\nnewlines\r\n", "ünïcödé 猫 日本語 😀👍🏽", "\xFF\xFE invalid \xC3", "\x01\x02 control",
      "\"quotes\" — dashes – and … ellipses", "Zürich 123 4.5e6 $%&*()"};
  for (const auto& s : fixed) {
    INFO(s);
    CHECK(t.decode(t.encode(s, true)) == s);
  }
  std::mt19937 rng(11);
  const std::string alphabet[] = {"a", "b", "e", "t", " ", "  ", "Lily", "é", "猫", "😀", "\n", ".", "\xFF", "th"};
  for (int i = 0; i < 300; ++i) {
    std::string s;
    const int n = static_cast<int>(rng() % 16);
    for (int j = 0; j < n; ++j) s += alphabet[rng() % 14];
    INFO(s);
    CHECK(t.decode(t.encode(s, true)) == s);
  }
  // A long text is fast (the merge queue is O(n log n)).
  std::string long_text;
  for (int i = 0; i < 2000; ++i) long_text += "Lily and Tim played in the park. ";
  const auto ids = t.encode(long_text, true);
  CHECK(t.decode(ids) == long_text);
  CHECK(ids.size() < long_text.size() / 2);
}
