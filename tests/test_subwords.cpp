// --merge-subwords: WordPiece / BPE pieces to words (record/subwords.hpp), hand-computed cases.
#include <doctest/doctest.h>

#include <attnviz/error.hpp>
#include <attnviz/record/subwords.hpp>

using namespace attnviz;

TEST_CASE("word groups: WordPiece ## pieces, BPE '·' words and character-class changes, specials alone") {
  CHECK(word_groups({"[CLS]", "un", "##aff", "##able", "!", "[SEP]"}) == std::vector<int>{0, 1, 1, 1, 2, 3});
  CHECK(word_groups({"<s>", "·The", "·cat", "s", ".", "·4", "2", "</s>"}) == std::vector<int>{0, 1, 2, 2, 3, 4, 4, 5});
  CHECK(merge_tokens({"<s>", "·The", "·cat", "s", ".", "·4", "2"}, {0, 1, 2, 2, 3, 4, 4}) ==
        std::vector<std::string>{"<s>", "The", "cats", ".", "42"});
  CHECK(merge_tokens({"[CLS]", "un", "##aff", "##able"}, {0, 1, 1, 1}) == std::vector<std::string>{"[CLS]", "unaffable"});
  CHECK_THROWS_AS(word_groups({"a", "b"}), UsageError);   // nothing marks a subword
}

TEST_CASE("merge_subwords: keys summed, queries averaged, rows still sum to one") {
  AttentionRecord r;
  AttentionTensor t("encoder.layer0.self", 2, 3, 3, "tokens", "tokens");
  const float w[2][3][3] = {{{0.5f, 0.3f, 0.2f}, {0.1f, 0.6f, 0.3f}, {0.2f, 0.2f, 0.6f}},
                            {{1.0f, 0.0f, 0.0f}, {0.0f, 1.0f, 0.0f}, {0.0f, 0.0f, 1.0f}}};
  for (int h = 0; h < 2; ++h)
    for (int q = 0; q < 3; ++q)
      for (int k = 0; k < 3; ++k) t.at(h, q, k) = w[h][q][k];
  r.tensors.push_back(t);
  r.tokens["tokens"] = {"[CLS]", "un", "##aff"};
  r.metadata["subwords"] = "wordpiece";
  merge_subwords(r);
  const AttentionTensor& m = r.tensors[0];
  REQUIRE(m.queries == 2);
  REQUIRE(m.keys == 2);
  // head 0: [CLS] row = [0.5, 0.3 + 0.2]; "unaff" = mean([0.1, 0.9], [0.2, 0.8]) = [0.15, 0.85]
  CHECK(m.at(0, 0, 0) == doctest::Approx(0.5));
  CHECK(m.at(0, 0, 1) == doctest::Approx(0.5));
  CHECK(m.at(0, 1, 0) == doctest::Approx(0.15));
  CHECK(m.at(0, 1, 1) == doctest::Approx(0.85));
  // head 1 (identity): the word attends to itself with weight 1
  CHECK(m.at(1, 1, 1) == doctest::Approx(1.0));
  CHECK(m.at(1, 1, 0) == doctest::Approx(0.0));
  CHECK(r.tokens["tokens"] == std::vector<std::string>{"[CLS]", "unaff"});
  CHECK(r.metadata.count("subword_groups"));
  // An image record is refused.
  AttentionRecord img = r;
  img.image = RecordImage{};
  CHECK_THROWS_AS(merge_subwords(img), UsageError);
}
