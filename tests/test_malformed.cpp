// Malformed-input suite: corrupt .npy, .npz, JSON and foreign .safetensors files are refused with
// exit 2 and a message naming the file and the reason, by the library and through the CLI
// (`inspect`, `render heatmap`), and leave no output file behind. NaN/Inf values are kept, reported.
#include "test_util.hpp"

#include <attnviz/error.hpp>
#include <attnviz/record/import.hpp>

#include <doctest/doctest.h>
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <vector>

using namespace attnviz;
using namespace attnviz::test;

namespace {

std::string floats(const std::vector<float>& v) {
  std::string b(v.size() * 4, '\0');
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::vector<float> uniform(int n, int k) { return std::vector<float>(static_cast<size_t>(n) * k, 1.0f / k); }

// An .npy v1.0 image with the given header dict and data, padded as numpy pads it.
std::string npy(const std::string& dict, const std::string& data) {
  std::string h = dict;
  while ((10 + h.size() + 1) % 64 != 0) h.push_back(' ');
  h.push_back('\n');
  return std::string("\x93NUMPY\x01\x00", 8) + u16(static_cast<unsigned>(h.size())) + h + data;
}
std::string npy_f4(const std::string& shape, const std::string& data) {
  return npy("{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }", data);
}
// UTF-32LE unicode array of n strings of width w (code points given flat).
std::string npy_u(int n, int w, const std::vector<std::uint32_t>& cps) {
  std::string data;
  for (auto c : cps) data += u32(c);
  return npy("{'descr': '<U" + std::to_string(w) + "', 'fortran_order': False, 'shape': (" + std::to_string(n) +
                 ",), }",
             data);
}

// A ZIP of stored members, as np.savez writes (without its ZIP64 extras, which are optional).
std::string zip(const std::vector<std::pair<std::string, std::string>>& members) {
  std::string out, cd;
  for (const auto& [name, data] : members) {
    const std::uint32_t crc = static_cast<std::uint32_t>(
        crc32(0, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
    const std::uint32_t off = static_cast<std::uint32_t>(out.size());
    out += u32(0x04034b50) + u16(20) + u16(0) + u16(0) + u16(0) + u16(0x21) + u32(crc) +
           u32(static_cast<std::uint32_t>(data.size())) + u32(static_cast<std::uint32_t>(data.size())) +
           u16(static_cast<unsigned>(name.size())) + u16(0) + name + data;
    cd += u32(0x02014b50) + u16(20) + u16(20) + u16(0) + u16(0) + u16(0) + u16(0x21) + u32(crc) +
          u32(static_cast<std::uint32_t>(data.size())) + u32(static_cast<std::uint32_t>(data.size())) +
          u16(static_cast<unsigned>(name.size())) + u16(0) + u16(0) + u16(0) + u16(0) + u32(0) + u32(off) + name;
  }
  const std::uint32_t cd_off = static_cast<std::uint32_t>(out.size());
  out += cd;
  out += u32(0x06054b50) + u16(0) + u16(0) + u16(static_cast<unsigned>(members.size())) +
         u16(static_cast<unsigned>(members.size())) + u32(static_cast<std::uint32_t>(cd.size())) + u32(cd_off) + u16(0);
  return out;
}

std::string safetensors(const std::string& header, const std::string& data) {
  return u64(header.size()) + header + data;
}

struct Case {
  std::string name;    // file name (the extension is deliberately not what detection relies on)
  std::string bytes;
  std::string reason;  // a substring the error message must contain
  std::string args;    // extra CLI arguments
  std::string named;   // the file the message must name, when not the input (a bad token file)
};

void check_refused(const std::vector<Case>& cases, const std::string& folder) {
  const fs::path dir = temp_dir(folder);
  const fs::path out = dir / "out";
  fs::create_directories(out);
  for (const auto& c : cases) {
    INFO("case: ", c.name);
    const fs::path f = dir / c.name;
    spit(f, c.bytes);
    auto r = run_cli("inspect '" + f.string() + "' " + c.args);
    INFO("output: ", r.out);
    CHECK(r.code == 2);
    CHECK(r.out.find(c.named.empty() ? f.string() : c.named) != std::string::npos);
    CHECK(r.out.find(c.reason) != std::string::npos);
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);  // one line
    // the renderer refuses the same input with the same reason and writes nothing
    auto h = run_cli("render heatmap '" + f.string() + "' " + c.args + " -o '" + (out / "x.png").string() + "'");
    INFO("render output: ", h.out);
    CHECK(h.code == 2);
    CHECK(h.out.find(c.reason) != std::string::npos);
    CHECK(count_files(out) == 0);
  }
}

}  // namespace

TEST_CASE("npy: corrupt variants exit 2 naming file and reason") {
  const std::string good = npy_f4("(4, 4)", floats(uniform(4, 4)));
  std::string wrong_magic = good;
  wrong_magic[1] = 'X';
  std::string bad_version = good;
  bad_version[6] = 9;
  const fs::path dir = temp_dir("npy_tokens");
  spit(dir / "three.txt", "a\nb\nc\n");
  spit(dir / "badutf8.txt", "a\nb\n\xFF\xFE\nd\n");
  std::vector<Case> cases = {
      {"trunc_magic.npy", good.substr(0, 5), "truncated", ""},
      {"trunc_len.npy", good.substr(0, 9), "truncated", ""},
      {"trunc_header.npy", good.substr(0, 40), "header length", ""},
      {"trunc_data.npy", good.substr(0, good.size() - 3), "needs 64 data bytes, the file has 61", ""},
      {"wrong_magic.npy", wrong_magic, "unrecognised format", ""},
      {"bad_version.npy", bad_version, "unsupported npy format version 9.0", ""},
      {"bigger_shape.npy", npy_f4("(40, 40)", floats(uniform(4, 4))), "needs 6400 data bytes, the file has 64", ""},
      {"overflow.npy", npy_f4("(1099511627776, 1099511627776, 1024)", ""), "overflows", ""},
      {"huge_claim.npy", npy_f4("(1048576, 1048576)", floats(uniform(4, 4))), "needs 4398046511104 data bytes", ""},
      {"zero_dim.npy", npy_f4("(0, 4)", ""), "empty or oversized dimension", ""},
      {"negative_dim.npy", npy_f4("(-4, 4)", floats(uniform(4, 4))), "negative dimension", ""},
      // A 1-D vector is one query row since issue 14 (item 16); six axes are still too many.
      {"rank6.npy", npy_f4("(1, 1, 1, 2, 2, 4)", floats(uniform(4, 4))), "expected [k], [q, k]", ""},
      {"int_dtype.npy", npy("{'descr': '<i4', 'fortran_order': False, 'shape': (4, 4), }", floats(uniform(4, 4))),
       "unsupported npy dtype '<i4'", ""},
      {"structured.npy", npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }", ""),
       "structured dtypes", ""},
      {"bad_dict.npy", npy("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (4, 4), }", ""), "unexpected character",
       ""},
      {"no_comma_dict.npy", npy("{'descr': '<f4' 'fortran_order': False, 'shape': (4, 4), }", ""),
       "expected ',' or '}' in the header dict", ""},
      {"no_comma_shape.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4 4), }", ""),
       "expected ',' or ')' in the shape tuple", ""},
      {"strings.npy", npy_u(2, 1, {'a', 'b'}), "string array", ""},
      {"tokens_mismatch.npy", good, "has 3 tokens but the query axis of tensor 'encoder.layer0.self' has 4",
       "--tokens '" + (dir / "three.txt").string() + "'"},
      {"tokens_badutf8.npy", good, "line 3 is not valid UTF-8", "--tokens '" + (dir / "badutf8.txt").string() + "'",
       (dir / "badutf8.txt").string()},
  };
  check_refused(cases, "npy_cli");
}

TEST_CASE("npz: corrupt variants exit 2 naming file and reason") {
  const std::string att = npy_f4("(1, 1, 3, 3)", floats(uniform(3, 3)));
  const std::string toks = npy_u(3, 2, {'a', 0, 'b', 'c', 0xE9, 0});
  const std::string good = zip({{"attentions.npy", att}, {"tokens.npy", toks}});
  // Sanity: the well-formed archive imports.
  AttentionRecord ok = import_bytes(good, "good.npz").at(0);
  REQUIRE(ok.tokens.at("tokens").at(2) == "\xC3\xA9");
  std::string crc = good;
  crc[30 + 15 + 130] ^= 0x55;  // a byte inside the first member's data
  std::string no_magic = good;
  no_magic[2] = 'X';
  std::string cd_past_end = good;
  cd_past_end[cd_past_end.size() - 3] = '\x7F';  // central directory offset, high byte
  // A deflated member that claims to inflate to 4 GiB from a few bytes.
  std::string deflated = fs::exists(source_dir() / "samples" / "translation_attention.npz")
                             ? slurp(source_dir() / "samples" / "translation_attention.npz")
                             : std::string();
  REQUIRE(!deflated.empty());
  std::string bomb = deflated;
  const size_t cd = bomb.rfind(std::string("PK\x01\x02", 4));
  REQUIRE(cd != std::string::npos);
  bomb.replace(cd + 24, 4, u32(0xFFFFFFF0u));  // uncompressed size of the last member
  std::string corrupt_stream = deflated;
  for (size_t i = 200; i < 260; ++i) corrupt_stream[i] = static_cast<char>(0xFF);
  std::vector<Case> cases = {
      {"trunc10.npz", good.substr(0, 10), "truncated", ""},
      {"trunc_half.npz", good.substr(0, good.size() / 2), "no end-of-central-directory", ""},
      {"trunc_end.npz", good.substr(0, good.size() - 1), "no end-of-central-directory", ""},
      {"no_magic.npz", no_magic, "unrecognised format", ""},
      {"cd_past_end.npz", cd_past_end, "runs past the end", ""},
      {"crc.npz", crc, "CRC-32", ""},
      {"bomb.npz", bomb, "more than deflate can produce", ""},
      {"corrupt_deflate.npz", corrupt_stream, "zip", ""},
      {"bigger_shape.npz", zip({{"attentions.npy", npy_f4("(1, 1, 30, 30)", floats(uniform(3, 3))), }}),
       "needs 3600 data bytes", ""},
      {"overflow.npz", zip({{"attentions.npy", npy_f4("(1099511627776, 1099511627776, 8)", "")}}), "overflows", ""},
      {"zero_dim.npz", zip({{"attentions.npy", npy_f4("(1, 0, 3, 3)", "")}}), "empty or oversized dimension", ""},
      {"negative_dim.npz", zip({{"attentions.npy", npy_f4("(1, -1, 3, 3)", "")}}), "negative dimension", ""},
      {"bad_codepoint.npz", zip({{"attentions.npy", att}, {"tokens.npy", npy_u(3, 1, {'a', 0xD800, 'c'})}}),
       "invalid code point", ""},
      {"token_count.npz", zip({{"attentions.npy", att}, {"tokens.npy", npy_u(2, 1, {'a', 'b'})}}),
       "query axis has 3 entries but tokens 'tokens' has 2", ""},
      {"no_arrays.npz", zip({{"tokens.npy", toks}}), "no float attention arrays", ""},
      {"dup_member.npz", zip({{"attentions.npy", att}, {"attentions.npy", att}}), "appears twice", ""},
      // torch.save writes a ZIP too: say so instead of "no attention arrays".
      {"attn.pt", zip({{"attn/data.pkl", "\x80\x02}q\x00."}, {"attn/data/0", floats(uniform(3, 3))}}),
       "is a PyTorch file (torch.save", ""},
      {"plain.zip", zip({{"readme.txt", "hello"}}), "ZIP archive with no .npy member", ""},
  };
  check_refused(cases, "npz_cli");
}

TEST_CASE("JSON: corrupt variants exit 2 naming file and reason") {
  const std::string good = R"({"tokens": ["a", "b"], "attention": [[[[0.5, 0.5], [0.1, 0.9]]]]})";
  REQUIRE(import_bytes(good, "good.json").at(0).tensors.size() == 1);
  std::vector<Case> cases = {
      {"trunc.json", good.substr(0, good.size() / 2), "not valid JSON", ""},
      {"trunc_end.json", good.substr(0, good.size() - 1), "not valid JSON", ""},
      {"not_json.json", "{this is not json}", "not valid JSON", ""},
      {"ragged.json", R"({"attention": [[0.5, 0.5], [1.0]]})", "rows must all have the same length", ""},
      {"deep.json", "{\"attention\": " + std::string(100000, '[') + std::string(100000, ']') + "}", "nests deeper", ""},
      {"empty_dim.json", R"({"attention": [[], []]})", "empty dimension", ""},
      {"rank6.json", R"({"attention": [[[[[[0.5, 0.5]]]]]]})", "nesting levels", ""},
      {"rank6.json", R"({"attention": [[[[[[1]]]]]]})", "nesting levels", ""},
      {"string_value.json", R"({"attention": [[0.5, "x"]]})", "'attention'[0][1] is not a number", ""},
      {"bad_utf8.json", "{\"tokens\": [\"a\xFF\", \"b\"], \"attention\": [[1, 0], [0, 1]]}", "not valid JSON", ""},
      {"token_count.json", R"({"tokens": ["a", "b", "c"], "attention": [[0.5, 0.5], [0.1, 0.9]]})",
       "query axis has 2 entries but tokens 'tokens' has 3", ""},
      {"token_not_string.json", R"({"tokens": ["a", true], "attention": [[0.5, 0.5], [0.1, 0.9]]})",
       "'tokens'[1] is not a string", ""},
      {"token_ids.json", R"({"tokens": [101, 2023], "attention": [[0.5, 0.5], [0.1, 0.9]]})",
       "'tokens'[0] is a number (a token id?), not a token string", ""},
      {"no_attention.json", R"({"tokens": ["a"]})", "no attention array", ""},
      {"top_array.json", R"(["a", "b"])", "must be an object", ""},
      {"top_array_rank6.json", "[[[[[[0.5, 0.5]]]]]]", "nesting levels", ""},
  };
  check_refused(cases, "json_cli");
}

TEST_CASE("foreign safetensors: corrupt variants exit 2 naming file and reason") {
  const std::string data = floats(uniform(3, 3));
  auto one = [&](const std::string& entry, const std::string& d) { return safetensors("{" + entry + "}", d); };
  const std::string ok_entry = R"("attentions": {"dtype": "F32", "shape": [1, 1, 3, 3], "data_offsets": [0, 36]})";
  REQUIRE(import_bytes(one(ok_entry, data), "ok.safetensors").at(0).find("encoder.layer0.self"));
  const std::string good = one(ok_entry, data);
  std::vector<Case> cases = {
      {"trunc_data.safetensors", good.substr(0, good.size() - 4), "past the end", ""},
      {"trunc_header.safetensors", good.substr(0, 30), "header length", ""},
      {"five_bytes.safetensors", good.substr(0, 5), "truncated", ""},
      {"bigger_shape.safetensors", one(R"("a": {"dtype": "F32", "shape": [1, 1, 30, 30], "data_offsets": [0, 36]})", data),
       "needs 3600 bytes", ""},
      {"overflow.safetensors",
       one(R"("a": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 36]})", data),
       "overflows", ""},
      {"zero_dim.safetensors", one(R"("a": {"dtype": "F32", "shape": [1, 0, 3], "data_offsets": [0, 0]})", data),
       "empty or oversized dimension", ""},
      {"negative_dim.safetensors", one(R"("a": {"dtype": "F32", "shape": [1, -3, 3], "data_offsets": [0, 36]})", data),
       "negative dimension", ""},
      {"i64.safetensors", one(R"("a": {"dtype": "I64", "shape": [3, 3], "data_offsets": [0, 72]})", data + data),
       "unsupported dtype I64", ""},
      {"bad_utf8_tokens.safetensors",
       one(ok_entry + ", \"__metadata__\": {\"tokens\": \"[\\\"a\xFF\\\", \\\"b\\\", \\\"c\\\"]\"}", data),
       "not valid JSON", ""},
      {"token_count.safetensors",
       one(ok_entry + R"(, "__metadata__": {"tokens": "[\"a\", \"b\"]"})", data),
       "query axis has 3 entries but tokens 'tokens' has 2", ""},
      {"rank6.safetensors", one(R"("a": {"dtype": "F32", "shape": [1, 1, 1, 1, 3, 3], "data_offsets": [0, 36]})", data),
       "expected [k], [q, k]", ""},
  };
  check_refused(cases, "st_cli");
}

TEST_CASE("a header claiming 2^40 elements fails fast with an error, not bad_alloc") {
  // Through the library (no allocation of the claimed size may be attempted: it would throw bad_alloc
  // or exhaust memory long before this test's timeout) ...
  const std::string npy_claim = npy_f4("(1048576, 1048576)", floats(uniform(4, 4)));
  CHECK_THROWS_AS(import_bytes(npy_claim, "claim.npy"), InputError);
  const std::string st_claim = safetensors(
      R"({"a": {"dtype": "F32", "shape": [1048576, 1048576], "data_offsets": [0, 4398046511104]}})", "");
  CHECK_THROWS_AS(import_bytes(st_claim, "claim.safetensors"), InputError);
  const std::string npz_claim = zip({{"attentions.npy", npy_claim}});
  CHECK_THROWS_AS(import_bytes(npz_claim, "claim.npz"), InputError);
  // ... and through the CLI, which reports bad_alloc as "out of memory": that must not appear.
  const fs::path dir = temp_dir("claim");
  spit(dir / "claim.npy", npy_claim);
  auto r = run_cli("inspect '" + (dir / "claim.npy").string() + "'");
  CHECK(r.code == 2);
  CHECK(r.out.find("out of memory") == std::string::npos);
  CHECK(r.out.find("needs 4398046511104 data bytes") != std::string::npos);
}

TEST_CASE("NaN/Inf weights are kept by every importer and reported by inspect") {
  const float nan = std::nanf(""), inf = INFINITY;
  const std::vector<float> v = {0.5f, nan, inf, -inf, 0.25f, 0.75f, 0.0f, 1.0f, 0.5f};
  const fs::path dir = temp_dir("nan");
  spit(dir / "nan.npy", npy_f4("(3, 3)", floats(v)));
  spit(dir / "nan.npz", zip({{"attentions.npy", npy_f4("(1, 1, 3, 3)", floats(v))}}));
  spit(dir / "nan.json", R"({"attention": [[0.5, NaN, Infinity], [-Infinity, 0.25, 0.75], [0, 1, null]]})");
  spit(dir / "nan.safetensors",
       safetensors(R"({"attentions": {"dtype": "F32", "shape": [3, 3], "data_offsets": [0, 36]}})", floats(v)));
  for (const char* f : {"nan.npy", "nan.npz", "nan.json", "nan.safetensors"}) {
    INFO(f);
    AttentionRecord r = import_record(dir / f);
    const auto& t = r.tensors.at(0);
    CHECK(std::isnan(t.at(0, 0, 1)));
    CHECK(t.at(0, 0, 2) == inf);
    CHECK(t.at(0, 1, 0) == -inf);
    CHECK(t.at(0, 1, 2) == 0.75f);
    auto out = run_cli("inspect '" + (dir / f).string() + "'");
    INFO(out.out);
    CHECK(out.code == 0);
    const std::string n = std::string(f) == "nan.json" ? "4 of 9 (2 NaN" : "3 of 9 (1 NaN";
    CHECK(out.out.find("WARNING non-finite weights: " + n) != std::string::npos);
    CHECK(out.out.find("h0 q=#0 k=#1 (NaN)") != std::string::npos);
    CHECK(out.out.find("h0 q=#1 k=#0 (-Inf)") != std::string::npos);
  }
}
