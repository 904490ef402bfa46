// Tests of CSV/TSV import: pandas' and np.savetxt's own files (tests/data/interop, written by
// make_fixtures.py) against the values and tokens pandas reads back, detection, and every refusal
// through the CLI (one line naming the file, row and column, exit 2).
#include "test_util.hpp"

#include <attnviz/error.hpp>
#include <attnviz/record/import.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>

using namespace attnviz;
using namespace attnviz::test;

namespace {

// The one tensor of a CSV import against X.ref (values) and X.expect.json (shape and tokens).
// Returns the record for further checks.
AttentionRecord check_fixture(const fs::path& file, const std::string& stem) {
  INFO("file: ", file.filename().string());
  const AttentionRecord r = import_record(file);
  REQUIRE(r.tensors.size() == 1);
  const auto& t = r.tensors[0];
  const auto want = read_ref(interop_fixtures() / (stem + ".ref"));
  const auto ex = nlohmann::json::parse(slurp(interop_fixtures() / (stem + ".expect.json")));
  CHECK(t.heads == 1);
  CHECK(t.queries == ex["shape"][0].get<int>());
  CHECK(t.keys == ex["shape"][1].get<int>());
  REQUIRE(t.data.size() == want.size());
  size_t bad = 0;
  for (size_t i = 0; i < want.size(); ++i) bad += !same_bits(t.data[i], want[i]);
  CHECK(bad == 0);
  const auto qt = ex["query_tokens"].get<std::vector<std::string>>();
  const auto kt = ex["key_tokens"].get<std::vector<std::string>>();
  const auto* q = r.axis_tokens(t.query_axis);
  const auto* k = r.axis_tokens(t.key_axis);
  if (qt.empty()) CHECK((!q || (t.query_axis == t.key_axis && kt == *q)));
  else CHECK((q && *q == qt));
  if (kt.empty()) CHECK((!k || (t.query_axis == t.key_axis && qt == *k)));
  else CHECK((k && *k == kt));
  return r;
}

// One refusal through the CLI: exit 2, one line, naming the file and containing `needle`.
void expect_refused(const fs::path& file, const std::string& needle, const std::string& global = "") {
  const RunResult r = run_cli(global + " inspect '" + file.string() + "'");
  INFO(file.filename().string(), ": ", r.out);
  CHECK(r.code == 2);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
  CHECK(r.out.find(file.string()) != std::string::npos);
  CHECK(r.out.find(needle) != std::string::npos);
  // render takes the same path.
  const RunResult h = run_cli(global + " render heatmap '" + file.string() + "' -o '" + file.string() + ".png'");
  CHECK(h.code == 2);
  CHECK(h.out.find(needle) != std::string::npos);
  CHECK(!fs::exists(file.string() + ".png"));
}

}  // namespace

TEST_CASE("pandas and np.savetxt files import with the values and tokens pandas reads back") {
  {
    // index + header, square, the same tokens: self-attention over "tokens"; NaN (pandas writes an
    // empty cell), inf, -inf, -0.0 and 1e-05 kept; tokens with a comma, quotes and non-ASCII text.
    const auto r = check_fixture(interop_fixtures() / "pandas_self.csv", "pandas_self");
    const auto& t = r.tensors[0];
    CHECK(t.name == "encoder.layer0.self");
    CHECK(t.query_axis == "tokens");
    CHECK(t.key_axis == "tokens");
    CHECK(r.tokens.at("tokens").at(1) == "a,b");
    CHECK(r.tokens.at("tokens").at(2) == "say \"hi\"");
    CHECK(r.tokens.at("tokens").at(4) == "\xE7\x8C\xAB");
    CHECK(std::isnan(t.at(0, 1, 2)));
    CHECK(t.at(0, 2, 3) == INFINITY);
    CHECK(t.at(0, 3, 4) == -INFINITY);
    CHECK(std::signbit(t.at(0, 4, 0)));
    CHECK(t.at(0, 5, 5) == 1e-05f);
    CHECK(r.metadata.at("imported_from").rfind("csv: ", 0) == 0);
  }
  {
    // TSV, [T=3, S=5]: cross-attention, target tokens from the index, source tokens from the header
    // (one of them is a lone "," that pandas does not quote in a TSV).
    const auto r = check_fixture(interop_fixtures() / "pandas_cross.tsv", "pandas_cross");
    const auto& t = r.tensors[0];
    CHECK(t.name == "cross");
    CHECK(t.query_axis == "target");
    CHECK(t.key_axis == "source");
    CHECK(r.tokens.at("source").at(2) == ",");
    CHECK(r.tokens.at("source").at(3) == "\"quoted\"");
    CHECK(r.metadata.at("imported_from").rfind("tsv: ", 0) == 0);
  }
  {
    // CRLF and a byte-order mark, header without index: the header labels both axes.
    const auto r = check_fixture(interop_fixtures() / "pandas_crlf_bom.csv", "pandas_crlf_bom");
    CHECK(r.tokens.at("tokens") == std::vector<std::string>{"\xC3\xBC", "\xC3\x9F", "x y", "end"});
  }
  {
    // pandas' default 0..n-1 labels are positions, not tokens.
    const auto r = check_fixture(interop_fixtures() / "pandas_default.csv", "pandas_default");
    CHECK(r.tokens.empty());
  }
  {
    // to_csv(index=False) of an unnamed frame: the header 0,1,2 is pandas' labels, not a data row.
    const auto r = check_fixture(interop_fixtures() / "pandas_range_header.csv", "pandas_range_header");
    CHECK(r.tokens.empty());
  }
  {
    const auto r = check_fixture(interop_fixtures() / "pandas_bare.csv", "pandas_bare");  // [2, 4], no labels
    CHECK(r.tokens.empty());
    CHECK(r.tensors[0].name == "cross");
  }
  {
    const auto r = check_fixture(interop_fixtures() / "savetxt_comma.csv", "savetxt_comma");
    CHECK(r.metadata.at("comments") == "layer 0, head 1");
  }
  {
    const auto r = check_fixture(interop_fixtures() / "savetxt_default.txt", "savetxt_default");  // spaces
    CHECK(r.metadata.at("imported_from").rfind("text (space-separated): ", 0) == 0);
  }
}

TEST_CASE("CSV/TSV detection: by extension, else by content; no final newline, CRLF, LF all alike") {
  const fs::path dir = temp_dir("detect");
  const std::string self = slurp(interop_fixtures() / "pandas_self.csv");
  // Content without extension, a .txt name, no final newline, CRLF line ends.
  spit(dir / "noext", self);
  check_fixture(dir / "noext", "pandas_self");
  spit(dir / "a.txt", self.substr(0, self.size() - 1));
  check_fixture(dir / "a.txt", "pandas_self");
  std::string crlf;
  for (char c : self) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  spit(dir / "crlf.csv", crlf);
  check_fixture(dir / "crlf.csv", "pandas_self");
  // pandas' sep="\t" output saved under a .csv name: tabs found in the content.
  fs::copy_file(interop_fixtures() / "pandas_cross.tsv", dir / "tabs.csv");
  check_fixture(dir / "tabs.csv", "pandas_cross");
  fs::copy_file(interop_fixtures() / "pandas_cross.tsv", dir / "tabs_noext");
  check_fixture(dir / "tabs_noext", "pandas_cross");
  // A header row that starts with "[CLS]" (index=False) is not JSON, with or without .csv.
  const std::string cls = "[CLS],the,[SEP]\n0.5,0.25,0.25\n0.1,0.8,0.1\n0,0,1\n";
  for (const char* name : {"cls.csv", "cls.txt", "cls"}) {
    INFO(name);
    spit(dir / name, cls);
    const auto r = import_record(dir / name);
    CHECK(r.tokens.at("tokens") == std::vector<std::string>{"[CLS]", "the", "[SEP]"});
    CHECK(r.tensors.at(0).at(0, 1, 1) == 0.8f);
  }
  // JSON still is JSON; text without numbers is still unrecognised.
  spit(dir / "a.json", "[[0.5, 0.5], [1, 0]]");
  CHECK(import_record(dir / "a.json").metadata.at("imported_from").rfind("json: ", 0) == 0);
  spit(dir / "prose", "hello, this is not attention at all\nnor is this, really\n");
  CHECK_THROWS_WITH_AS(import_record(dir / "prose"), doctest::Contains("unrecognised format"), InputError);
  CHECK(looks_like_delimited("0.5,0.5\n"));
  CHECK(looks_like_delimited("\tx\ty\nx\t1\t0\n"));
  CHECK_FALSE(looks_like_delimited(std::string("0.5,\0,1", 7)));
  CHECK_FALSE(looks_like_delimited("# only a comment\n"));
}

TEST_CASE("CSV labels: square with different row and column tokens is cross-attention; quoted newlines") {
  const fs::path dir = temp_dir("labels");
  // Source and target of the same length: the labels differ, so target x source.
  spit(dir / "square_cross.csv", ",the,cat\ndie,0.9,0.1\nKatze,0.2,0.8\n");
  auto r = import_record(dir / "square_cross.csv");
  CHECK(r.tensors.at(0).name == "cross");
  CHECK(r.tensors.at(0).query_axis == "target");
  CHECK(r.tokens.at("target") == std::vector<std::string>{"die", "Katze"});
  CHECK(r.tokens.at("source") == std::vector<std::string>{"the", "cat"});
  // Index without header (header=False): query tokens only; a quoted token holding a line break,
  // an empty quoted token, and numbers with '+', spaces and upper-case NAN/INF, 1e400 (inf).
  spit(dir / "index_only.csv", "\"two\nlines\",+0.5, 0.5 \n\"\",NAN,-INF\nx,1e400,1e-400\n");
  r = import_record(dir / "index_only.csv");
  const auto& t = r.tensors.at(0);
  CHECK(t.queries == 3);
  CHECK(t.keys == 2);
  CHECK(r.tokens.at("target") == std::vector<std::string>{"two\nlines", "", "x"});
  CHECK(t.at(0, 0, 0) == 0.5f);
  CHECK(t.at(0, 0, 1) == 0.5f);
  CHECK(std::isnan(t.at(0, 1, 0)));
  CHECK(t.at(0, 1, 1) == -INFINITY);
  CHECK(t.at(0, 2, 0) == INFINITY);
  CHECK(t.at(0, 2, 1) == 0.0f);
  // A header naming only the value columns (one cell fewer than the rows) with a token column.
  spit(dir / "short_header.csv", "a,b\na,0.5,0.5\nb,0.25,0.75\n");
  r = import_record(dir / "short_header.csv");
  CHECK(r.tokens.at("tokens") == std::vector<std::string>{"a", "b"});
  CHECK(r.tensors.at(0).at(0, 1, 1) == 0.75f);
  // --transpose and --tokens work on CSV as on every other format.
  ImportOptions opt;
  opt.transpose = true;
  r = import_record(dir / "square_cross.csv", opt);
  CHECK(r.tensors.at(0).at(0, 0, 1) == 0.2f);
  // An integer matrix whose first row happens to be 0, 1: data (only floats below it make 0..n-1 a
  // header).
  spit(dir / "ints.csv", "0,1\n1,0\n");
  r = import_record(dir / "ints.csv");
  CHECK(r.tensors.at(0).queries == 2);
  CHECK(r.tensors.at(0).at(0, 0, 1) == 1.0f);
  // Rows count records: a quoted line break does not move the row numbers of later errors.
  spit(dir / "quoted_rows.csv", ",\"a\nb\",c\n\"x\ny\",0.5,0.5\nz,0.5,bad\n");
  CHECK_THROWS_WITH_AS(import_record(dir / "quoted_rows.csv"), doctest::Contains("row 3, column 3: 'bad'"), InputError);
  // One row: a [1, K] matrix.
  spit(dir / "one_row.csv", "0.25,0.75");
  r = import_record(dir / "one_row.csv");
  CHECK(r.tensors.at(0).queries == 1);
  CHECK(r.tensors.at(0).keys == 2);
}

TEST_CASE("bad CSV/TSV: one line naming the file, the row and the column, exit 2") {
  const fs::path dir = temp_dir("bad");
  struct Case {
    const char* name;
    std::string bytes;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"ragged.csv", ",a,b\na,0.5,0.5\nb,0.5\n", "ragged rows: row 3 has 2 cells but row 2 has 3"},
      {"ragged_first.csv", "0.5,0.5,0\n0.5,0.5\n", "ragged rows: row 1 has 3 cells but row 2 has 2"},
      {"word.csv", ",a,b\na,0.5,0.5\nb,0.5,high\n", "row 3, column 3: 'high' is not a number"},
      {"word_noindex.tsv", "0.5\t0.5\n0.5\t0..5\n", "row 2, column 2: '0..5' is not a number"},
      {"comment_rows.csv", "# header\n# more\n0.5,0.5\n0.5,x1\n", "row 4, column 2: 'x1' is not a number"},
      {"empty.csv", "", "is empty"},
      {"bom_only.csv", "\xEF\xBB\xBF", "is empty"},
      {"blank.csv", "\n\n  \n# comment\n", "holds no rows of numbers"},
      {"header_long.csv", ",a,b,c\na,0.5,0.5\nb,0.5,0.5\n", "the header (row 1) has 4 cells but the data rows have 3"},
      {"header_short.csv", "a,b\n0.5,0.5,0\n0.5,0.5,0\n", "the header (row 1) has 2 cells but the data rows have 3"},
      {"header_only.csv", ",a,b\n", "has a header row (row 1) but no rows of numbers"},
      {"labels_only.csv", "a\nb\nc\n", "only a column of row labels"},
      {"open_quote.csv", ",a,b\n\"a,0.5,0.5\n", "row 2, column 1: a quoted field is never closed"},
      {"after_quote.csv", ",a,b\n\"a\"x,0.5,0.5\n", "row 2, column 1: text after the closing quote"},
      {"bad_utf8.csv", ",a,\xFF\na,0.5,0.5\n\xFF,0.5,0.5\n", "is not valid UTF-8"},
  };
  for (const auto& c : cases) {
    spit(dir / c.name, c.bytes);
    expect_refused(dir / c.name, c.needle);
  }
  // Above the memory limit (--max-mib, as every importer): a 600 KiB file needs 2.3 MiB.
  std::string big;
  while (big.size() < (600u << 10)) big += "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0\n";
  spit(dir / "big.csv", big);
  expect_refused(dir / "big.csv", "--max-mib", "--max-mib 2");
  CHECK(run_cli("--max-mib 3 inspect '" + (dir / "big.csv").string() + "' >/dev/null").code == 0);
}

TEST_CASE("attnviz render heatmap a.csv -o a.png: pandas output to a PNG") {
  const fs::path dir = temp_dir("render");
  fs::copy_file(interop_fixtures() / "pandas_self.csv", dir / "a.csv");
  const RunResult r = run_cli("render heatmap '" + (dir / "a.csv").string() + "' -o '" + (dir / "a.png").string() + "'");
  INFO(r.out);
  REQUIRE(r.code == 0);
  const std::string png = slurp(dir / "a.png");
  REQUIRE(png.size() > 33);
  CHECK(png.compare(0, 8, "\x89PNG\r\n\x1A\n") == 0);
  CHECK(png.compare(12, 4, "IHDR") == 0);
  const auto be32 = [&](size_t o) {
    return (std::uint32_t(std::uint8_t(png[o])) << 24) | (std::uint32_t(std::uint8_t(png[o + 1])) << 16) |
           (std::uint32_t(std::uint8_t(png[o + 2])) << 8) | std::uint32_t(std::uint8_t(png[o + 3]));
  };
  CHECK(be32(16) > 100);  // width
  CHECK(be32(20) > 100);  // height
  // inspect shows the tokens and the non-finite cells of the CSV.
  const RunResult i = run_cli("inspect '" + (dir / "a.csv").string() + "'");
  CHECK(i.code == 0);
  CHECK(i.out.find("1 NaN, 1 +Inf, 1 -Inf") != std::string::npos);
  // The TSV cross-attention draws too.
  fs::copy_file(interop_fixtures() / "pandas_cross.tsv", dir / "c.tsv");
  CHECK(run_cli("render heatmap '" + (dir / "c.tsv").string() + "' -o '" + (dir / "c.png").string() + "'").code == 0);
  CHECK(fs::file_size(dir / "c.png") > 100);
}
