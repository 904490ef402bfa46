// Tests of the AttentionRecord file: round trips, and every malformed record of issue 2 item 8
// (truncated, wrong header length, unparsable header, shape vs data_offsets, offsets past the end,
// unsupported dtype, duplicate names) refused with exit 2 and a precise message.
#include "test_util.hpp"

#include <attnviz/error.hpp>
#include <attnviz/record/import.hpp>
#include <attnviz/record/record.hpp>
#include <attnviz/io/safetensors.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

using namespace attnviz;
using namespace attnviz::test;

namespace {

std::string st(const std::string& header, const std::string& data) { return u64(header.size()) + header + data; }

std::string f32(int n, float v = 0.25f) {
  std::string b(static_cast<size_t>(n) * 4, '\0');
  for (int i = 0; i < n; ++i) std::memcpy(b.data() + 4 * i, &v, 4);
  return b;
}

AttentionRecord small_record() {
  AttentionRecord r;
  AttentionTensor t("decoder.layer0.cross", 2, 3, 4, "target", "source");
  for (size_t i = 0; i < t.data.size(); ++i) t.data[i] = static_cast<float>(i) / 24.0f;
  r.tensors.push_back(t);
  r.tokens["target"] = {"die", "Katze", "</s>"};
  r.tokens["source"] = {"the", "cat", "猫", "</s>"};
  r.metadata["model"] = "test";
  return r;
}

// Expects the bytes to be refused by the loader (InputError containing `reason`) and by the CLI
// (exit 2, one line naming the file and the reason).
void refused(const std::string& name, const std::string& bytes, const std::string& reason) {
  INFO("case: ", name);
  const fs::path dir = temp_dir("bad_records");
  const fs::path f = dir / (name + ".safetensors");
  spit(f, bytes);
  try {
    load_records(f);
    FAIL("load_records accepted it");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find(reason) != std::string::npos);
    CHECK(e.path() == f.string());
  }
  auto r = run_cli("inspect '" + f.string() + "'");
  INFO("output: ", r.out);
  CHECK(r.code == 2);
  CHECK(r.out.find(f.string()) != std::string::npos);
  CHECK(r.out.find(reason) != std::string::npos);
}

}  // namespace

TEST_CASE("record round trip keeps tensors, axes, tokens, metadata and NaN/Inf") {
  const fs::path dir = temp_dir("roundtrip");
  AttentionRecord r = small_record();
  r.tensors[0].at(1, 2, 3) = std::nanf("");
  r.tensors[0].at(0, 0, 0) = -INFINITY;
  save_record(dir / "r.safetensors", r);
  AttentionRecord back = load_record(dir / "r.safetensors");
  REQUIRE(back.tensors.size() == 1);
  const auto& t = back.tensors[0];
  CHECK(t.name == "decoder.layer0.cross");
  CHECK(t.query_axis == "target");
  CHECK(t.key_axis == "source");
  CHECK(t.at(1, 0, 1) == r.tensors[0].at(1, 0, 1));
  CHECK(std::isnan(t.at(1, 2, 3)));
  CHECK(t.at(0, 0, 0) == -INFINITY);
  CHECK(back.tokens.at("source")[2] == "猫");
  CHECK(back.metadata.at("model") == "test");
  // Several samples in one file.
  save_records(dir / "two.safetensors", {r, small_record()});
  auto both = load_records(dir / "two.safetensors");
  REQUIRE(both.size() == 2);
  CHECK(both[1].tensors[0].at(1, 2, 3) == small_record().tensors[0].at(1, 2, 3));
  // The importer reads the same file the same way, and --src-tokens replaces a labelled axis.
  spit(dir / "src.txt", "a\nb\nc\nd\n");
  ImportOptions opt;
  opt.src_tokens_file = (dir / "src.txt").string();
  AttentionRecord imp = import_record(dir / "r.safetensors", opt);
  CHECK(imp.tokens.at("source")[3] == "d");
  CHECK(imp.tokens.at("target")[0] == "die");
}

TEST_CASE("bad records: each is refused with exit 2 and a precise message") {
  const std::string entry = R"("a": {"dtype": "F32", "shape": [1, 2, 2], "data_offsets": [0, 16]})";
  const std::string good = st("{" + entry + "}", f32(4));
  {
    const fs::path dir = temp_dir("good");
    spit(dir / "g.safetensors", good);
    REQUIRE(load_records(dir / "g.safetensors").at(0).tensors.at(0).keys == 2);
  }
  SUBCASE("truncated") {
    refused("trunc_len", good.substr(0, 5), "truncated");
    refused("trunc_header", good.substr(0, 20), "header length");
    refused("trunc_data", good.substr(0, good.size() - 1), "past the end of the data");
  }
  SUBCASE("wrong header length") {
    std::string longer = good;
    longer.replace(0, 8, u64(good.size()));  // claims more header than the file holds
    refused("header_too_long", longer, "header length");
    std::string shorter = good;
    shorter.replace(0, 8, u64(10));  // cuts the JSON short
    refused("header_too_short", shorter, "header is not valid JSON");
    refused("header_huge", u64(std::uint64_t{1} << 62) + "{}", "header length <= 100 MB");
  }
  SUBCASE("header JSON does not parse") {
    refused("bad_json", st("{\"a\": {\"dtype\": \"F32\", ", f32(4)), "header is not valid JSON");
    refused("not_object", st("[1, 2]   ", ""), "header is not a JSON object");
    refused("bad_entry", st(R"({"a": {"dtype": "F32", "shape": [1, 2, 2]}})", f32(4)), "data_offsets must be");
  }
  SUBCASE("shapes disagree with data_offsets") {
    refused("shape_vs_offsets", st(R"({"a": {"dtype": "F32", "shape": [1, 3, 3], "data_offsets": [0, 16]}})", f32(9)),
            "needs 36 bytes, data_offsets give 16");
    refused("overflow", st(R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 4], "data_offsets": [0, 16]}})", f32(4)),
            "overflows");
    refused("negative", st(R"({"a": {"dtype": "F32", "shape": [1, -2, 2], "data_offsets": [0, 16]}})", f32(4)),
            "negative dimension");
    refused("begin_after_end", st(R"({"a": {"dtype": "F32", "shape": [1, 2, 2], "data_offsets": [16, 0]}})", f32(4)),
            "begin 16 > end 0");
    refused("overlap", st(R"({"a": {"dtype": "F32", "shape": [1, 2, 2], "data_offsets": [0, 16]},
                             "b": {"dtype": "F32", "shape": [1, 2, 2], "data_offsets": [8, 24]}})", f32(6)),
            "overlap");
  }
  SUBCASE("offsets past the end") {
    refused("past_end", st(R"({"a": {"dtype": "F32", "shape": [1, 2, 2], "data_offsets": [16, 32]}})", f32(4)),
            "data_offsets end 32 is past the end of the data (16 bytes)");
    refused("past_end_huge",
            st(R"({"a": {"dtype": "F32", "shape": [1, 2, 2], "data_offsets": [18446744073709551600, 18446744073709551615]}})", f32(4)),
            "past the end of the data");
  }
  SUBCASE("unsupported dtype") {
    refused("dtype_i32", st(R"({"a": {"dtype": "I32", "shape": [1, 2, 2], "data_offsets": [0, 16]}})", f32(4)),
            "unsupported dtype I32");
    refused("dtype_num", st(R"({"a": {"dtype": 3, "shape": [1, 2, 2], "data_offsets": [0, 16]}})", f32(4)),
            "dtype must be a string");
  }
  SUBCASE("duplicate names") {
    refused("dup", st("{" + entry + ", " + entry + "}", f32(4)), "duplicate tensor name 'a'");
  }
  SUBCASE("record metadata that lies") {
    const std::string meta = R"(, "__metadata__": {"attnviz.format": "attnviz.record/1", "attnviz.tokens": )";
    refused("tokens_not_json", st("{" + entry + meta + R"("[oops"}})", f32(4)), "is not valid JSON");
    refused("tokens_wrong_type", st("{" + entry + meta + R"("{\"t\": 5}"}})", f32(4)), "wrong structure");
    refused("tokens_count",
            st("{" + entry + meta + R"("{\"t\": [\"x\"]}", "attnviz.axes": "{\"a\": [\"t\", \"t\"]}"}})", f32(4)),
            "query axis has 2 entries but tokens 't' has 1");
    refused("samples_lie", st("{" + entry + R"(, "__metadata__": {"attnviz.format": "attnviz.record/1", "attnviz.samples": "99"}})", f32(4)),
            "does not match the tensors");
    refused("rank2_record", st(R"({"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}, "__metadata__": {"attnviz.format": "attnviz.record/1"}})", f32(4)),
            "expected shape [heads, queries, keys]");
    refused("zero_dim", st(R"({"a": {"dtype": "F32", "shape": [1, 0, 2], "data_offsets": [0, 0]}, "__metadata__": {"attnviz.format": "attnviz.record/1"}})", ""),
            "dimension out of range");
  }
}
