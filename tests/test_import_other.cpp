// Tests of JSON and foreign-safetensors import: both JSON forms, NaN/Infinity literals, metadata,
// F16/BF16/F64 tensors of rank 2..5 mapped like npy, tokens from __metadata__, content detection.
#include "test_util.hpp"

#include <attnviz/error.hpp>
#include <attnviz/record/import.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

using namespace attnviz;
using namespace attnviz::test;

namespace {

std::string u16s(const std::vector<std::uint16_t>& v) {
  std::string s;
  for (auto x : v) s += {static_cast<char>(x & 0xFF), static_cast<char>(x >> 8)};
  return s;
}

}  // namespace

TEST_CASE("JSON encoder form: [layer][head][q][k] with tokens and metadata") {
  const std::string j = R"({"model": "bert-base-uncased", "tokens": ["[CLS]", "caf\u00e9"],
    "attention": [[[[0.9, 0.1], [0.3, 0.7]]], [[[0.5, 0.5], [1, 0]]]]})";
  AttentionRecord r = import_bytes(j, "x.json").at(0);
  REQUIRE(r.tensors.size() == 2);
  const auto* l1 = r.find("encoder.layer1.self");
  REQUIRE(l1);
  CHECK(l1->heads == 1);
  CHECK(l1->at(0, 1, 0) == 1.0f);
  CHECK(r.find("encoder.layer0.self")->at(0, 1, 1) == 0.7f);
  CHECK(r.tokens.at("tokens")[1] == "caf\xC3\xA9");
  CHECK(r.metadata.at("model") == "bert-base-uncased");
  // [q][k] alone is one layer, one head.
  AttentionRecord two = import_bytes(R"({"attention": [[0.25, 0.75], [1, 0]]})", "y.json").at(0);
  CHECK(two.tensors.at(0).name == "encoder.layer0.self");
  CHECK(two.tensors.at(0).at(0, 0, 1) == 0.75f);
}

TEST_CASE("JSON: a bare numeric array (json.dump(att.tolist(), f)) is the attention") {
  AttentionRecord r = import_bytes("[[[[0.9, 0.1], [0.3, 0.7]]], [[[0.5, 0.5], [1, 0]]]]", "bare.json").at(0);
  REQUIRE(r.tensors.size() == 2);
  CHECK(r.find("encoder.layer1.self")->at(0, 1, 0) == 1.0f);
  CHECK(r.find("encoder.layer0.self")->at(0, 1, 1) == 0.7f);
}

TEST_CASE("JSON encoder-decoder form: source/target axes and NaN/Infinity literals") {
  const std::string j = R"({"source_tokens": ["a", "b", "c"], "target_tokens": ["x", "y"],
    "encoder_attention": [[[[1, 0, 0], [0, 1, 0], [0, 0, 1]]]],
    "decoder_attention": [[[[1, 0], [0.5, 0.5]]]],
    "cross_attention": [[[[NaN, 0.5, 0.5], [Infinity, -Infinity, null]]]]})";
  AttentionRecord r = import_bytes(j, "t.json").at(0);
  REQUIRE(r.tensors.size() == 3);
  const auto* e = r.find("encoder.layer0.self");
  const auto* d = r.find("decoder.layer0.self");
  const auto* c = r.find("decoder.layer0.cross");
  REQUIRE(e);
  REQUIRE(d);
  REQUIRE(c);
  CHECK(e->query_axis == "source");
  CHECK(d->key_axis == "target");
  CHECK(c->query_axis == "target");
  CHECK(c->key_axis == "source");
  CHECK(std::isnan(c->at(0, 0, 0)));
  CHECK(c->at(0, 1, 0) == INFINITY);
  CHECK(c->at(0, 1, 1) == -INFINITY);
  CHECK(std::isnan(c->at(0, 1, 2)));
  // A string that merely contains NaN stays a string.
  AttentionRecord s = import_bytes(R"({"note": "NaN Infinity", "attention": [[1]]})", "s.json").at(0);
  CHECK(s.metadata.at("note") == "NaN Infinity");
}

TEST_CASE("foreign safetensors: F16/BF16/F64, rank 4 and 5, tokens from __metadata__") {
  // encoder_attentions F16 [2, 1, 2, 2] (0.5 = 0x3800, 1 = 0x3C00, 0 = 0), cross BF16 [1, 1, 1, 2]
  // (0.25 = 0x3E80, 0.75 = 0x3F40), x F64 [1, 2, 1, 1, 1] (5-D: layers, batch, heads, q, k).
  const std::string data = u16s({0x3800, 0x3800, 0x3C00, 0, 0, 0x3C00, 0x3800, 0x3800}) + u16s({0x3E80, 0x3F40});
  double d[2] = {0.125, 0.875};
  std::string f64(16, '\0');
  std::memcpy(f64.data(), d, 16);
  const std::string header =
      R"({"encoder_attentions": {"dtype": "F16", "shape": [2, 1, 2, 2], "data_offsets": [0, 16]},)"
      R"( "cross_attentions": {"dtype": "BF16", "shape": [1, 1, 1, 2], "data_offsets": [16, 20]},)"
      R"( "x": {"dtype": "F64", "shape": [1, 2, 1, 1, 1], "data_offsets": [20, 36]},)"
      R"( "__metadata__": {"src_tokens": "[\"a\", \"b\"]", "tgt_tokens": "[\"z\"]", "tool": "mine"}})";
  const std::string bytes = u64(header.size()) + header + data + f64;
  ImportOptions opt;
  opt.batch = 1;
  AttentionRecord r = import_bytes(bytes, "f.safetensors", opt).at(0);
  REQUIRE(r.tensors.size() == 4);
  const auto* e1 = r.find("encoder.layer1.self");
  REQUIRE(e1);
  CHECK(e1->query_axis == "source");
  CHECK(e1->at(0, 0, 0) == 0.0f);
  CHECK(e1->at(0, 0, 1) == 1.0f);
  CHECK(e1->at(0, 1, 1) == 0.5f);
  const auto* c = r.find("decoder.layer0.cross");
  REQUIRE(c);
  CHECK(c->at(0, 0, 0) == 0.25f);
  CHECK(c->at(0, 0, 1) == 0.75f);
  const auto* x = r.find("x.layer0.self");
  REQUIRE(x);
  CHECK(x->at(0, 0, 0) == 0.875f);  // batch entry 1
  CHECK(r.tokens.at("source") == std::vector<std::string>{"a", "b"});
  CHECK(r.metadata.at("tool") == "mine");
}

TEST_CASE("detection is by content: a .npy named .json still imports, a text file does not") {
  const fs::path dir = temp_dir("detect");
  fs::copy_file(source_dir() / "tests" / "data" / "interop" / "f4_le_C_r2_v1.npy", dir / "really_npy.json");
  CHECK(import_record(dir / "really_npy.json").tensors.at(0).keys == 4);
  spit(dir / "text.npy", "hello, this is not attention at all\n");
  try {
    import_record(dir / "text.npy");
    FAIL("expected an error");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("unrecognised format") != std::string::npos);
  }
  CHECK(detect_kind(std::string("\x93NUMPY\x01\x00", 8)) == FileKind::Npy);
  CHECK(detect_kind("PK\x03\x04....") == FileKind::Npz);
  CHECK(detect_kind("  {\"a\": 1}") == FileKind::Json);
}
