// Other people's attention files, first try (issue 14, items 16, 17, 19, 20, 21, 22, 23): 1-D
// vectors, pointer-generator JSON, keys x queries, padded heads, neutral names, multi-member npz,
// render text on imported files.
#include <attnviz/error.hpp>
#include <attnviz/record/import.hpp>

#include <doctest/doctest.h>

#include <cstring>

#include "test_util.hpp"

using namespace attnviz;
using namespace attnviz::test;

namespace {

// A float32 C-order .npy of the given shape.
std::string npy(const std::vector<int>& shape, const std::vector<float>& v) {
  std::string dims;
  for (size_t i = 0; i < shape.size(); ++i) dims += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? "," : "");
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::string out = std::string("\x93NUMPY\x01\x00", 8) + u16(static_cast<unsigned>(header.size())) + header;
  std::string data(v.size() * 4, '\0');
  std::memcpy(data.data(), v.data(), data.size());
  return out + data;
}

}  // namespace

TEST_CASE("a 1-D attention vector loads as one query row and keeps its tokens") {
  auto dir = temp_dir("vec");
  spit(dir / "v.npy", npy({4}, {0.1f, 0.2f, 0.3f, 0.4f}));
  auto r = import_record(dir / "v.npy");
  REQUIRE(r.tensors.size() == 1);
  CHECK(r.tensors[0].name == "attention");
  CHECK(r.tensors[0].queries == 1);
  CHECK(r.tensors[0].keys == 4);
  CHECK(r.tensors[0].at(0, 0, 3) == doctest::Approx(0.4f));
  spit(dir / "v.json", R"({"tokens": ["a", "b", "c"], "attention": [0.2, 0.5, 0.3]})");
  auto j = import_record(dir / "v.json");
  REQUIRE(j.tensors.size() == 1);
  CHECK(j.tensors[0].queries == 1);
  CHECK(j.tensors[0].key_axis == "tokens");
  REQUIRE(j.axis_tokens("tokens"));
  CHECK(j.axis_tokens("tokens")->at(1) == "b");
  // A 1 x N JSON keeps its tokens on the key axis too.
  spit(dir / "row.json", R"({"tokens": ["a", "b", "c"], "attention": [[0.2, 0.5, 0.3]]})");
  auto row = import_record(dir / "row.json");
  CHECK(row.tensors[0].key_axis == "tokens");
  CHECK(row.axis_tokens(row.tensors[0].key_axis)->size() == 3);
}

TEST_CASE("CLI: render text draws a 1-D JSON vector (the only tensor, not 'pool')") {
  auto dir = temp_dir("vec_text");
  spit(dir / "v.json", R"({"tokens": ["not", "bad", "at", "all"], "attention": [0.1, 0.6, 0.1, 0.2]})");
  auto r = run_cli("render text '" + (dir / "v.json").string() + "' -o '" + (dir / "t.png").string() + "'");
  CHECK_MESSAGE(r.code == 0, r.out);
  CHECK(fs::exists(dir / "t.png"));
}

TEST_CASE("pointer-generator JSON: attn_dists with article_lst / decoded_lst, --key and the key list") {
  auto dir = temp_dir("pgen");
  spit(dir / "pg.json", R"({"article_lst": ["the", "cat", "sat"], "decoded_lst": ["cat", "sat"],
                            "abstract_str": "cat sat", "p_gens": [0.3, 0.4],
                            "attn_dists": [[0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]})");
  auto r = import_record(dir / "pg.json");
  REQUIRE(r.tensors.size() == 1);
  CHECK(r.tensors[0].name == "attn_dists");
  CHECK(r.axis_tokens(r.tensors[0].key_axis)->at(2) == "sat");
  CHECK(r.axis_tokens(r.tensors[0].query_axis)->at(0) == "cat");
  // Other names: --key and the token keys.
  spit(dir / "other.json", R"({"words_in": ["a", "b"], "out": ["x"], "alpha": [[0.4, 0.6]], "ids": ["q1"]})");
  ImportOptions o;
  o.key = "alpha";
  o.src_key = "words_in";
  o.tgt_key = "out";
  auto k = import_record(dir / "other.json", o);
  CHECK(k.tensors[0].name == "alpha");
  CHECK(k.axis_tokens("source")->at(1) == "b");
  // No attention: the message lists the keys and names --key.
  spit(dir / "none.json", R"({"article": ["a", "b"], "scores": {"x": 1}})");
  CHECK_THROWS_WITH_AS(import_record(dir / "none.json"), doctest::Contains("article (array of 2 strings)"), InputError);
  CHECK_THROWS_WITH_AS(import_record(dir / "none.json"), doctest::Contains("--key"), InputError);
  o.key = "missing";
  CHECK_THROWS_WITH_AS(import_record(dir / "other.json", o), doctest::Contains("alpha ([1][2] numbers)"), InputError);
}

TEST_CASE("--transpose: a keys x queries file becomes queries x keys with its tokens") {
  auto dir = temp_dir("transpose");
  // LAS-style [keys=3, queries=2]: column q is the distribution of query q.
  spit(dir / "las.npy", npy({3, 2}, {0.7f, 0.1f, 0.2f, 0.1f, 0.1f, 0.8f}));
  ImportOptions o;
  o.transpose = true;
  auto r = import_record(dir / "las.npy", o);
  REQUIRE(r.tensors.size() == 1);
  const auto& t = r.tensors[0];
  CHECK(t.queries == 2);
  CHECK(t.keys == 3);
  CHECK(t.at(0, 0, 0) == doctest::Approx(0.7f));
  CHECK(t.at(0, 0, 2) == doctest::Approx(0.1f));
  CHECK(t.at(0, 1, 2) == doctest::Approx(0.8f));
  auto plain = import_record(dir / "las.npy");
  CHECK(plain.tensors[0].queries == 3);
  // attnviz records transpose too (axes swap with the data).
  auto cli = run_cli("inspect --transpose '" + sample("alignment_6x7.safetensors").string() + "'");
  CHECK(cli.code == 0);
  CHECK(cli.out.find("decoder.layer0.cross  [2, 7, 6]  queries:source keys:target") != std::string::npos);
}

TEST_CASE("padding: inspect reports all-zero key columns; --crop auto and --crop Q,K cut them") {
  auto dir = temp_dir("pad");
  // Self-attention over 4 tokens, the last one masked: key column 3 is zero; row 3 is a padded query.
  std::vector<float> v = {0.5f, 0.5f, 0, 0,  0.2f, 0.8f, 0, 0,  0.3f, 0.3f, 0.4f, 0,  0.3f, 0.3f, 0.4f, 0};
  v[2] = 0;  // row 0 attends to keys 0, 1
  spit(dir / "pad.npy", npy({4, 4}, v));
  spit(dir / "tok.txt", "a\nb\nc\n<pad>\n");
  auto r = import_record(dir / "pad.npy");
  auto z = zero_lines(r.tensors[0]);
  CHECK(z.cols == 1);
  CHECK(z.trailing_cols == 1);
  CHECK(z.rows == 0);
  ImportOptions o;
  o.crop = "auto";
  o.tokens_file = (dir / "tok.txt").string();
  auto c = import_record(dir / "pad.npy", o);
  CHECK(c.tensors[0].queries == 3);
  CHECK(c.tensors[0].keys == 3);
  CHECK(c.axis_tokens("tokens")->size() == 3);
  CHECK(c.tensors[0].at(0, 2, 2) == doctest::Approx(0.4f));
  o.crop = "2,2";
  auto c2 = import_record(dir / "pad.npy", o);
  CHECK(c2.tensors[0].keys == 2);
  CHECK(c2.axis_tokens("tokens")->back() == "b");
  o.crop = "2,3";
  CHECK_THROWS_AS(import_record(dir / "pad.npy", o), UsageError);
  o.crop = "x";
  CHECK_THROWS_AS(import_record(dir / "pad.npy", o), UsageError);
  auto ins = run_cli("inspect '" + (dir / "pad.npy").string() + "'");
  CHECK(ins.code == 0);
  CHECK(ins.out.find("1 key column(s) (1 at the end)") != std::string::npos);
  CHECK(ins.out.find("--crop auto") != std::string::npos);
  auto ins2 = run_cli("inspect --crop auto '" + (dir / "pad.npy").string() + "'");
  CHECK(ins2.out.find("[1, 3, 3]") != std::string::npos);
}

TEST_CASE("a non-square generic matrix is named 'cross', not encoder self-attention") {
  auto dir = temp_dir("names");
  spit(dir / "ts.npy", npy({2, 3}, {0.2f, 0.3f, 0.5f, 0.6f, 0.2f, 0.2f}));
  auto r = import_record(dir / "ts.npy");
  CHECK(r.tensors[0].name == "cross");
  CHECK(r.tensors[0].query_axis == "target");
  CHECK(r.tensors[0].key_axis == "source");
  spit(dir / "sq.npy", npy({2, 2}, {0.5f, 0.5f, 0.5f, 0.5f}));
  CHECK(import_record(dir / "sq.npy").tensors[0].name == "encoder.layer0.self");
  // A 4-D non-square array: one cross tensor per layer.
  spit(dir / "l.npy", npy({2, 1, 1, 2}, {0.5f, 0.5f, 0.1f, 0.9f}));
  auto l = import_record(dir / "l.npy");
  CHECK(l.tensors[1].name == "layer1.cross");
}

TEST_CASE("JSON with several arrays: --sample names the tensors and --tensor; inspect lists them") {
  auto dir = temp_dir("members");
  spit(dir / "m.json", R"({"first": [[0.5, 0.5], [0.1, 0.9]], "second": [[1.0, 0.0], [0.0, 1.0]]})");
  ImportOptions o;
  o.sample = 1;
  CHECK_THROWS_WITH_AS(import_record(dir / "m.json", o), doctest::Contains("--tensor"), InputError);
  CHECK_THROWS_WITH_AS(import_record(dir / "m.json", o), doctest::Contains("first, second"), InputError);
  auto ins = run_cli("inspect '" + (dir / "m.json").string() + "'");
  CHECK(ins.out.find("2 tensors (pick one with --tensor): first, second") != std::string::npos);
}

TEST_CASE("CLI: render text HTML names -Inf and +Inf weights as such, not NaN") {
  auto dir = temp_dir("inf_html");
  spit(dir / "v.json", R"({"tokens": ["a", "b", "c", "d"], "attention": [0.5, -Infinity, NaN, 0.5]})");
  auto r = run_cli("render text '" + (dir / "v.json").string() + "' -o '" + (dir / "t.html").string() + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  const std::string html = slurp(dir / "t.html");
  CHECK(html.find("weight -Inf") != std::string::npos);
  CHECK(html.find("weight NaN") != std::string::npos);
}
