// Other people's text, first try (issue 14, item 6): lowercasing beyond Latin-1 and Unicode
// normalization (utf8proc): Romanian Ș/Ț, cedilla vs comma-below forms, NFKC, stripped diacritics.
#include <attnviz/error.hpp>
#include <attnviz/text/tokenizer.hpp>

#include <doctest/doctest.h>

#include "test_util.hpp"

using namespace attnviz;
using namespace attnviz::test;

TEST_CASE("--lowercase lowers letters outside Latin-1 (Romanian, Greek, Armenian, Georgian Mtavruli)") {
  TokenizerOptions o{.lowercase = true};
  CHECK(tokenize("ȘTEFAN ȚARĂ", o) == std::vector<std::string>{"ștefan", "țară"});
  CHECK(tokenize("ΟΔΥΣΣΕΥΣ", o) == std::vector<std::string>{"οδυσσευσ"});
  CHECK(tokenize("ԱՐԵՎ", o) == std::vector<std::string>{"արեվ"});
  CHECK(tokenize("ǅ Ǆ", o) == std::vector<std::string>{"ǆ", "ǆ"});
  CHECK(to_lower(U'Ș') == U'ș');
  CHECK(to_lower(U'Ա') == U'ա');
  CHECK(to_lower(U'Ä') == U'ä');
  CHECK(to_lower(U'7') == U'7');
}

TEST_CASE("normalization: NFC composes, NFKC folds compatibility forms, nfkc-ro unifies ş/ș, diacritics strip") {
  // "s" + COMBINING COMMA BELOW (U+0326) composes to ș (U+0219).
  CHECK(normalize_text("s\xCC\xA6", Normalization::NFC) == "ș");
  CHECK(normalize_text("ﬁne Ａ", Normalization::NFKC) == "fine A");
  CHECK(normalize_text("ﬁne", Normalization::NFC) == "ﬁne");
  // Cedilla (U+015F, U+0163) and comma-below (U+0219, U+021B) forms: one word with nfkc-ro only.
  const std::string cedilla = "şi ţară", comma = "și țară";
  CHECK(normalize_text(cedilla, Normalization::NFKC) != comma);
  CHECK(normalize_text(cedilla, Normalization::NFKC_RO) == comma);
  CHECK(normalize_text("ŞŢ", Normalization::NFKC_RO) == "ȘȚ");
  CHECK(normalize_text("Ștefan și Élodie", Normalization::None, true) == "Stefan si Elodie");
  CHECK(normalize_text(cedilla, Normalization::None, true) == normalize_text(comma, Normalization::None, true));
  // Malformed bytes are replaced, not refused.
  CHECK(normalize_text("a\xFF", Normalization::NFC) == "a\xEF\xBF\xBD");
  CHECK(parse_normalization("nfkc-ro") == Normalization::NFKC_RO);
  CHECK_THROWS_AS(parse_normalization("nfd"), UsageError);
}

TEST_CASE("the tokenizer applies normalization before splitting: one vocabulary entry per word") {
  TokenizerOptions o{.lowercase = true, .normalize = Normalization::NFKC_RO};
  auto a = tokenize("Şi Ţara", o), b = tokenize("și țara", o);
  CHECK(a == b);
  TokenizerOptions s{.lowercase = true, .strip_diacritics = true};
  CHECK(tokenize("Ștefan, ţara!", s) == std::vector<std::string>{"stefan", ",", "tara", "!"});
}

TEST_CASE("CLI: train translate --normalize/--strip-diacritics are kept in the model") {
  auto dir = temp_dir("norm_cli");
  std::string tsv;
  for (int i = 0; i < 12; ++i) tsv += (i % 2 ? "Şi ţara\tand the land\n" : "Și țara\tand the land\n");
  spit(dir / "ro.tsv", tsv);
  const std::string model = (dir / "m.safetensors").string();
  auto tr = run_cli("train translate --corpus '" + (dir / "ro.tsv").string() +
                    "' --lowercase --normalize nfkc-ro --epochs 1 --embed 4 --hidden 4 --heldout 0 -o '" + model + "'");
  REQUIRE_MESSAGE(tr.code == 0, tr.out);
  // Both spellings share one vocabulary entry each: <pad> <unk> <bos> <eos> și țara.
  CHECK(tr.out.find("vocab 6 ->") != std::string::npos);
  auto bad = run_cli("train translate --corpus '" + (dir / "ro.tsv").string() + "' --normalize nfd -o '" + model + "'");
  CHECK(bad.code == 1);
}
