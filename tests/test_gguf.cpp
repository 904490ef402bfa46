// GGUF reader: every metadata value type, every tensor type (dequantized against hand-made blocks),
// alignment, and every malformed-file case -> InputError naming the file and the offset.
#include <doctest/doctest.h>
#include <fmt/core.h>

#include "test_util.hpp"

#include <attnviz/error.hpp>
#include <attnviz/io/gguf.hpp>
#include <attnviz/io/limits.hpp>
#include <attnviz/io/npy.hpp>
#include <attnviz/io/safetensors.hpp>
#include <attnviz/models/lm.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <new>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>

using namespace attnviz;
using namespace attnviz::test;

// Allocation tracking for the "nothing larger than the file" tests: this executable's operator new
// counts the bytes requested while g_tracking is set.
namespace {
std::atomic<bool> g_tracking{false};
std::atomic<std::size_t> g_alloc_total{0}, g_alloc_max{0};
}  // namespace

void* operator new(std::size_t n) {
  if (g_tracking.load(std::memory_order_relaxed)) {
    g_alloc_total += n;
    std::size_t m = g_alloc_max.load();
    while (n > m && !g_alloc_max.compare_exchange_weak(m, n)) {
    }
  }
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace {

using VT = GgufValueType;

template <class T>
std::string raw(T v) {
  std::string s(sizeof(T), '\0');
  std::memcpy(s.data(), &v, sizeof(T));
  return s;
}
std::string gstr(const std::string& s) { return u64(s.size()) + s; }
std::string vt(VT t) { return u32(static_cast<std::uint32_t>(t)); }

// Builds a GGUF image: metadata entries as raw bytes, tensors laid out one after the other at aligned
// offsets (or at the offset a test asks for).
struct Builder {
  std::uint32_t version = 3;
  std::uint32_t align = 32;
  std::string kvs;
  std::uint64_t n_kv = 0;
  struct Tensor {
    std::string name;
    std::vector<std::uint64_t> ne;
    std::uint32_t type;
    std::string data;
    std::optional<std::uint64_t> offset;
  };
  std::vector<Tensor> tensors;
  bool write_data = true;  // false: stop after the header (for offsets far outside the file)

  Builder& kv(const std::string& key, VT t, const std::string& value) {
    kvs += gstr(key) + vt(t) + value;
    ++n_kv;
    return *this;
  }
  Builder& kv_str(const std::string& key, const std::string& v) { return kv(key, VT::STRING, gstr(v)); }
  Builder& kv_u32(const std::string& key, std::uint32_t v) { return kv(key, VT::UINT32, u32(v)); }
  Builder& tensor(const std::string& name, std::vector<std::uint64_t> ne, GgmlType type, std::string data) {
    tensors.push_back({name, std::move(ne), static_cast<std::uint32_t>(type), std::move(data), std::nullopt});
    return *this;
  }
  std::string build() const {
    std::string out = "GGUF" + u32(version) + u64(tensors.size()) + u64(n_kv) + kvs;
    std::uint64_t off = 0;
    std::vector<std::uint64_t> offs;
    for (const auto& t : tensors) {
      const std::uint64_t o = t.offset ? *t.offset : off;
      offs.push_back(o);
      off = (o + t.data.size() + align - 1) / align * align;
      out += gstr(t.name) + u32(static_cast<std::uint32_t>(t.ne.size()));
      for (auto d : t.ne) out += u64(d);
      out += u32(t.type) + u64(o);
    }
    out.resize((out.size() + align - 1) / align * align, '\0');
    if (!write_data) return out;
    const std::size_t base = out.size();
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      if (out.size() < base + offs[i] + tensors[i].data.size()) out.resize(base + offs[i] + tensors[i].data.size(), '\0');
      std::memcpy(out.data() + base + offs[i], tensors[i].data.data(), tensors[i].data.size());
    }
    return out;
  }
};

std::string floats(std::initializer_list<float> v) {
  std::string s;
  for (float f : v) s += raw(f);
  return s;
}

// Parses and returns the InputError message ("" when it parsed).
std::string error_of(const std::string& bytes, const std::string& name = "bad.gguf") {
  try {
    (void)GgufFile::parse(bytes, name);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

void check_error(const std::string& bytes, const std::string& needle) {
  const std::string msg = error_of(bytes);
  INFO("message: " << msg);
  CHECK(msg.rfind("bad.gguf: ", 0) == 0);
  CHECK(msg.find(needle) != std::string::npos);
  CHECK(msg.find(", at offset ") != std::string::npos);
  CHECK(msg.find('\n') == std::string::npos);
}

// A small valid file with one tensor: the base that the error cases change one field of.
Builder one_tensor() {
  Builder b;
  b.kv_str("general.architecture", "llama");
  b.tensor("w", {2, 2}, GgmlType::F32, floats({1, 2, 3, 4}));
  return b;
}

}  // namespace

TEST_CASE("gguf: every metadata value type reads back") {
  Builder b;
  b.kv("u8", VT::UINT8, raw<std::uint8_t>(250))
      .kv("i8", VT::INT8, raw<std::int8_t>(-7))
      .kv("u16", VT::UINT16, raw<std::uint16_t>(65000))
      .kv("i16", VT::INT16, raw<std::int16_t>(-30000))
      .kv("u32", VT::UINT32, raw<std::uint32_t>(4000000000u))
      .kv("i32", VT::INT32, raw<std::int32_t>(-2000000000))
      .kv("f32", VT::FLOAT32, raw(1.5f))
      .kv("yes", VT::BOOL, raw<std::uint8_t>(1))
      .kv("no", VT::BOOL, raw<std::uint8_t>(0))
      .kv("s", VT::STRING, gstr("héllo ▁world"))
      .kv("empty", VT::STRING, gstr(""))
      .kv("u64", VT::UINT64, raw<std::uint64_t>(1ull << 40))
      .kv("i64", VT::INT64, raw<std::int64_t>(-(1ll << 50)))
      .kv("f64", VT::FLOAT64, raw(0.1))
      .kv("arr_s", VT::ARRAY, vt(VT::STRING) + u64(3) + gstr("<unk>") + gstr("") + gstr("▁a"))
      .kv("arr_f", VT::ARRAY, vt(VT::FLOAT32) + u64(3) + floats({-1.f, 0.25f, 3.f}))
      .kv("arr_i", VT::ARRAY, vt(VT::INT32) + u64(2) + raw<std::int32_t>(-5) + raw<std::int32_t>(6))
      .kv("arr_u8", VT::ARRAY, vt(VT::UINT8) + u64(2) + raw<std::uint8_t>(200) + raw<std::uint8_t>(1))
      .kv("arr_f64", VT::ARRAY, vt(VT::FLOAT64) + u64(1) + raw(2.5))
      .kv("arr_empty", VT::ARRAY, vt(VT::STRING) + u64(0))
      .kv("nested", VT::ARRAY,
          vt(VT::ARRAY) + u64(2) + vt(VT::INT16) + u64(2) + raw<std::int16_t>(1) + raw<std::int16_t>(2) +
              vt(VT::STRING) + u64(1) + gstr("x"))
      .kv("after_nested", VT::UINT8, raw<std::uint8_t>(9));
  const GgufFile f = GgufFile::parse(b.build(), "types.gguf");
  CHECK(f.version() == 3);
  CHECK(f.tensors().empty());
  CHECK(f.get_int("u8") == 250);
  CHECK(f.get_int("i8") == -7);
  CHECK(f.get_int("u16") == 65000);
  CHECK(f.get_int("i16") == -30000);
  CHECK(f.get_int("u32") == 4000000000ll);
  CHECK(f.get_int("i32") == -2000000000);
  CHECK(f.get_float("f32") == 1.5);
  CHECK(f.get_bool("yes", false));
  CHECK_FALSE(f.get_bool("no", true));
  CHECK(f.get_bool("absent", true));
  CHECK(f.get_string("s") == "héllo ▁world");
  CHECK(f.get_string("empty").empty());
  CHECK(f.get_int("u64") == (1ll << 40));
  CHECK(f.get_int("i64") == -(1ll << 50));
  CHECK(f.get_float("f64") == 0.1);
  CHECK(f.get_float("u32") == 4e9);  // integers read as numbers too
  CHECK(f.get_string_array("arr_s") == std::vector<std::string>{"<unk>", "", "▁a"});
  CHECK(f.get_float_array("arr_f") == std::vector<float>{-1.f, 0.25f, 3.f});
  CHECK(f.get_float_array("arr_f64") == std::vector<float>{2.5f});
  CHECK(f.get_int_array("arr_i") == std::vector<std::int64_t>{-5, 6});
  CHECK(f.get_int_array("arr_u8") == std::vector<std::int64_t>{200, 1});
  CHECK(f.get_string_array("arr_empty").empty());
  CHECK(f.get_int("after_nested") == 9);  // the nested array was walked to its end
  CHECK(f.kv("nested")->count == 2);
  CHECK(f.describe_value("nested") == "[array x 2] [int16 x 2], [string x 1]");
  CHECK(f.describe_value("arr_s") == "[string x 3] \"<unk>\", \"\", \"▁a\"");
  CHECK(f.describe_value("s") == "\"héllo ▁world\"");
  CHECK(f.describe_value("i8") == "-7");
  CHECK(f.describe_value("yes") == "true");
  CHECK(f.get_string("absent", "dflt") == "dflt");
  CHECK(f.get_int("absent", 42) == 42);
  CHECK(f.get_float("absent", 0.5) == 0.5);
  const auto keys = f.keys();
  REQUIRE(keys.size() == 22);
  CHECK(keys.front() == "u8");
  CHECK(keys[9] == "s");
  CHECK(keys.back() == "after_nested");

  // Wrong types and missing keys: one line naming the file and the key.
  CHECK_THROWS_WITH_AS(f.get_string("u8"), doctest::Contains("types.gguf: metadata 'u8' is uint8, expected string"),
                       InputError);
  CHECK_THROWS_WITH_AS(f.get_int("s"), doctest::Contains("metadata 's' is string, expected an integer"), InputError);
  CHECK_THROWS_WITH_AS(f.get_int("missing"), doctest::Contains("types.gguf: metadata key 'missing' is missing"),
                       InputError);
  CHECK_THROWS_AS(f.get_string_array("arr_f"), InputError);
  CHECK_THROWS_AS(f.get_int_array("arr_s"), InputError);
  CHECK_THROWS_AS(f.get_float_array("s"), InputError);
  CHECK_THROWS_AS(f.get_bool("u8", false), InputError);
}

TEST_CASE("gguf: a uint64 above 2^63 is refused as an integer but reads as a number") {
  Builder b;
  b.kv("big", VT::UINT64, raw<std::uint64_t>(~0ull));
  const GgufFile f = GgufFile::parse(b.build(), "big.gguf");
  CHECK_THROWS_WITH_AS(f.get_int("big"), doctest::Contains("does not fit a signed 64-bit integer"), InputError);
  CHECK(f.get_float("big") == doctest::Approx(1.8446744073709552e19));
}

TEST_CASE("gguf: tensor types dequantize to the hand-computed values") {
  // F16: 1.0 = 0x3C00, -2.0 = 0xC000, 0.5 = 0x3800, 65504 = 0x7BFF, 2^-24 = 0x0001 (subnormal).
  std::string f16 = u16(0x3C00) + u16(0xC000) + u16(0x3800) + u16(0x7BFF) + u16(0x0001) + u16(0x8000);
  // BF16: 1.0 = 0x3F80, -3.0 = 0xC040, 0.15625 = 0x3E20.
  std::string bf16 = u16(0x3F80) + u16(0xC040) + u16(0x3E20) + u16(0x0000);
  // Q8_0: one block, d = 0.5 (0x3800), q[i] = i - 16  ->  x[i] = (i - 16) / 2; second block d = -2, q = 127/-128.
  std::string q8 = u16(0x3800);
  for (int i = 0; i < 32; ++i) q8 += static_cast<char>(static_cast<std::int8_t>(i - 16));
  q8 += u16(0xC000);
  for (int i = 0; i < 32; ++i) q8 += static_cast<char>(static_cast<std::int8_t>(i % 2 ? 127 : -128));
  // Q4_0: d = 2.0 (0x4000); byte j holds element j (low nibble) and element j+16 (high nibble).
  // Low nibble j, high nibble 15 - j  ->  x[j] = 2 (j - 8), x[j+16] = 2 (7 - j).
  std::string q4 = u16(0x4000);
  for (int j = 0; j < 16; ++j) q4 += static_cast<char>((j & 0xF) | ((15 - j) << 4));

  // Q4_1: d = 0.5 (0x3800), m = -1 (0xBC00); low nibble j, high nibble 15 - j -> x = q / 2 - 1.
  std::string q41 = u16(0x3800) + u16(0xBC00);
  for (int j = 0; j < 16; ++j) q41 += static_cast<char>(j | ((15 - j) << 4));
  // Q5_0: d = 2; qh = 0xA5A5F00F (little-endian bytes 0F F0 A5 A5): bit j is element j's fifth bit
  // (elements 0-3 set, 4-11 clear, 12-15 set; 16+ follow 0xA5A5); low nibbles as in Q4_1.
  // x = 2 * ((nibble | fifth << 4) - 16).
  const std::uint32_t qh5 = 0xA5A5F00Fu;
  std::string q50 = u16(0x4000) + std::string("\x0F\xF0\xA5\xA5", 4);
  for (int j = 0; j < 16; ++j) q50 += static_cast<char>(j | ((15 - j) << 4));
  // Q5_1: d = 0.25 (0x3400), m = 3 (0x4200), the same qh and nibbles: x = q / 4 + 3.
  std::string q51 = u16(0x3400) + u16(0x4200) + std::string("\x0F\xF0\xA5\xA5", 4);
  for (int j = 0; j < 16; ++j) q51 += static_cast<char>(j | ((15 - j) << 4));

  Builder b;
  b.tensor("q41", {32}, GgmlType::Q4_1, q41)
      .tensor("q50", {32}, GgmlType::Q5_0, q50)
      .tensor("q51", {32}, GgmlType::Q5_1, q51);
  b.tensor("f32", {3}, GgmlType::F32, floats({1.f, -0.f, 1e-30f}))
      .tensor("f16", {3, 2}, GgmlType::F16, f16)
      .tensor("bf16", {2, 2}, GgmlType::BF16, bf16)
      .tensor("q8", {32, 2}, GgmlType::Q8_0, q8)
      .tensor("q4", {32}, GgmlType::Q4_0, q4);
  const GgufFile f = GgufFile::parse(b.build(), "types.gguf");
  REQUIRE(f.tensors().size() == 8);
  const auto q41v = f.dequantize(*f.find("q41")), q50v = f.dequantize(*f.find("q50")),
             q51v = f.dequantize(*f.find("q51"));
  REQUIRE(q41v.size() == 32);
  REQUIRE(q50v.size() == 32);
  REQUIRE(q51v.size() == 32);
  for (int j = 0; j < 16; ++j) {
    CAPTURE(j);
    CHECK(q41v[j] == 0.5f * j - 1.f);
    CHECK(q41v[j + 16] == 0.5f * (15 - j) - 1.f);
    const int lo = j | static_cast<int>(((qh5 >> j) & 1u) << 4), hi = (15 - j) | static_cast<int>(((qh5 >> (j + 16)) & 1u) << 4);
    CHECK(q50v[j] == 2.f * (lo - 16));
    CHECK(q50v[j + 16] == 2.f * (hi - 16));
    CHECK(q51v[j] == 0.25f * lo + 3.f);
    CHECK(q51v[j + 16] == 0.25f * hi + 3.f);
  }
  // Spot values written out: element 0 has fifth bit 1 (16), element 4 has 0 (4), element 16 is
  // high nibble 15 with bit 16 of qh = 1 (0xA5 bit 0) -> 31, element 17: nibble 14, bit 17 = 0 -> 14.
  CHECK(q50v[0] == 0.f);
  CHECK(q50v[4] == -24.f);
  CHECK(q50v[16] == 30.f);
  CHECK(q50v[17] == -4.f);
  CHECK(q51v[16] == 10.75f);
  CHECK(f.find("q41")->nbytes == 20);
  CHECK(f.find("q50")->nbytes == 22);
  CHECK(f.find("q51")->nbytes == 24);
  CHECK(f.dequantize(*f.find("f32")) == std::vector<float>{1.f, -0.f, 1e-30f});
  const auto h = f.dequantize(*f.find("f16"));
  CHECK(h == std::vector<float>{1.f, -2.f, 0.5f, 65504.f, std::ldexp(1.f, -24), -0.f});
  CHECK(f.dequantize(*f.find("bf16")) == std::vector<float>{1.f, -3.f, 0.15625f, 0.f});
  const auto q8v = f.dequantize(*f.find("q8"));
  REQUIRE(q8v.size() == 64);
  for (int i = 0; i < 32; ++i) CHECK(q8v[i] == (i - 16) * 0.5f);
  for (int i = 0; i < 32; ++i) CHECK(q8v[32 + i] == (i % 2 ? -254.f : 256.f));
  const auto q4v = f.dequantize(*f.find("q4"));
  REQUIRE(q4v.size() == 32);
  for (int j = 0; j < 16; ++j) {
    CHECK(q4v[j] == 2.f * (j - 8));
    CHECK(q4v[j + 16] == 2.f * (7 - j));
  }
  CHECK(f.find("q8")->nbytes == 68);
  CHECK(f.find("q4")->nbytes == 18);
  CHECK(f.find("f16")->numel() == 6);
  CHECK(f.find("nope") == nullptr);

  // matrix(): cols = ne[0], rows = the rest; row-major.
  const Mat m = f.matrix("f16", 2, 3);
  CHECK(m.rows() == 2);
  CHECK(m.cols() == 3);
  CHECK(m(0, 1) == -2.f);
  CHECK(m(1, 0) == 65504.f);
  CHECK(f.matrix("q4").rows() == 1);
  CHECK(f.matrix("q8", 2, 32)(1, 1) == -254.f);
  CHECK_THROWS_WITH_AS(f.matrix("f16", 3, 2),
                       doctest::Contains("types.gguf: tensor 'f16' has ne [3, 2] (a [2, 3] matrix), expected [3, 2]"),
                       InputError);
  CHECK_THROWS_WITH_AS(f.matrix("missing"), doctest::Contains("tensor 'missing' is missing"), InputError);
}

TEST_CASE("gguf: alignment, data offsets and version 2") {
  Builder b = one_tensor();
  b.version = 2;
  b.align = 64;
  b.kv_u32("general.alignment", 64);
  b.tensor("v", {4}, GgmlType::F32, floats({5, 6, 7, 8}));
  const std::string bytes = b.build();
  const GgufFile f = GgufFile::parse(bytes, "v2.gguf");
  CHECK(f.version() == 2);
  CHECK(f.alignment() == 64);
  CHECK(f.data_offset() % 64 == 0);
  CHECK(f.find("w")->offset == f.data_offset());
  CHECK(f.find("v")->offset == f.data_offset() + 64);
  CHECK(f.dequantize(*f.find("v")) == std::vector<float>{5, 6, 7, 8});
  CHECK(f.file_size() == bytes.size());

  // Default alignment 32 without the key.
  const GgufFile g = GgufFile::parse(one_tensor().build(), "d.gguf");
  CHECK(g.alignment() == 32);
  CHECK(g.data_offset() % 32 == 0);
  CHECK(g.matrix("w", 2, 2)(1, 0) == 3.f);
}

TEST_CASE("gguf: open() maps a file from disk; a missing file is an InputError") {
  const auto dir = temp_dir("gguf_open");
  spit(dir / "m.gguf", one_tensor().build());
  const GgufFile f = GgufFile::open(dir / "m.gguf");
  CHECK(f.get_string("general.architecture") == "llama");
  const GgufFile copy = f;  // copies share the mapping
  CHECK(copy.matrix("w")(0, 1) == 2.f);
  CHECK_THROWS_WITH_AS(GgufFile::open(dir / "absent.gguf"), doctest::Contains("absent.gguf: cannot open"), InputError);
  spit(dir / "empty.gguf", "");
  CHECK_THROWS_WITH_AS(GgufFile::open(dir / "empty.gguf"), doctest::Contains("empty.gguf: empty file"), InputError);
  CHECK_THROWS_AS(GgufFile::open(dir), InputError);
}

TEST_CASE("gguf: bad magic and unsupported versions") {
  std::string good = one_tensor().build();
  std::string bad = good;
  bad[0] = 'G', bad[1] = 'G', bad[2] = 'M', bad[3] = 'L';
  check_error(bad, "not a GGUF file (magic 47 47 4D 4C");
  check_error("GG", "not a GGUF file");
  for (std::uint32_t v : {0u, 1u, 4u, 99u}) {
    std::string s = good;
    std::memcpy(s.data() + 4, u32(v).data(), 4);
    check_error(s, v == 1 ? "GGUF version 1" : "GGUF version " + std::to_string(v) + " is not supported");
  }
  std::string be = good;
  std::memcpy(be.data() + 4, u32(0x03000000).data(), 4);
  check_error(be, "big-endian");
}

TEST_CASE("gguf: a file truncated at any byte is refused with a message") {
  Builder b;
  b.kv_str("general.architecture", "llama")
      .kv("tokens", VT::ARRAY, vt(VT::STRING) + u64(2) + gstr("a") + gstr("bc"))
      .kv("nested", VT::ARRAY, vt(VT::ARRAY) + u64(1) + vt(VT::UINT8) + u64(2) + "xy")
      .kv("f", VT::FLOAT64, raw(1.0))
      .tensor("a", {2}, GgmlType::F16, u16(0x3C00) + u16(0x3C00))
      .tensor("b", {32}, GgmlType::Q8_0, std::string(34, '\1'));
  const std::string full = b.build();
  REQUIRE(error_of(full).empty());
  int refused = 0;
  for (std::size_t n = 0; n < full.size(); ++n) {
    const std::string msg = error_of(full.substr(0, n));
    INFO("prefix " << n << ": " << msg);
    CHECK(msg.rfind("bad.gguf: ", 0) == 0);
    CHECK(msg.find(", at offset ") != std::string::npos);
    refused += !msg.empty();
  }
  CHECK(refused == static_cast<int>(full.size()));
}

TEST_CASE("gguf: huge counts and lengths are refused before anything is allocated") {
  const std::string head = "GGUF" + u32(3);
  // Refused quickly, and everything allocated while parsing (tables, the message) adds up to less
  // than 4 KiB: nothing is sized from a claimed count.
  auto timed = [](const std::string& bytes, const std::string& needle) {
    g_alloc_total = 0, g_alloc_max = 0;
    const auto t0 = std::chrono::steady_clock::now();
    g_tracking = true;
    const std::string msg = error_of(bytes);
    g_tracking = false;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK(s < 0.05);
    CHECK(g_alloc_total.load() < 4096 + bytes.size());
    INFO("message: " << msg);
    CHECK(msg.find(needle) != std::string::npos);
    CHECK(msg.find(", at offset ") != std::string::npos);
  };
  timed(head + u64(1ull << 40) + u64(0) + std::string(64, '\0'), "header claims 1099511627776 tensors");
  timed(head + u64(0) + u64(1ull << 60) + std::string(64, '\0'), "header claims 1152921504606846976 metadata entries");
  // A key claiming 2^60 bytes; a string value claiming more than the file.
  timed(head + u64(0) + u64(1) + u64(1ull << 60) + std::string(16, 'a'), "metadata key #0 claims 1152921504606846976 bytes");
  timed(head + u64(0) + u64(1) + gstr("k") + vt(VT::STRING) + u64(100) + "short", "metadata 'k' claims 100 bytes");
  // Arrays claiming 2^60 strings, 2^61 uint64 and 2^62 nested arrays.
  timed(head + u64(0) + u64(1) + gstr("k") + vt(VT::ARRAY) + vt(VT::STRING) + u64(1ull << 60) + std::string(16, '\0'),
        "claims 1152921504606846976 strings");
  timed(head + u64(0) + u64(1) + gstr("k") + vt(VT::ARRAY) + vt(VT::UINT64) + u64(1ull << 61) + std::string(16, '\0'),
        "claims 2305843009213693952 uint64 elements");
  timed(head + u64(0) + u64(1) + gstr("k") + vt(VT::ARRAY) + vt(VT::ARRAY) + u64(1ull << 62) + std::string(16, '\0'),
        "claims 4611686018427387904 arrays");
  // A tensor name longer than the file.
  timed(head + u64(1) + u64(0) + u64(1ull << 62) + std::string(40, '\0'), "tensor name #0 claims");
  // A tensor whose shape needs more bytes than the file.
  timed(head + u64(1) + u64(0) + gstr("t") + u32(2) + u64(1ull << 30) + u64(1ull << 30) + u32(0) + u64(0),
        "needs more bytes than the whole file");
}

TEST_CASE("gguf: malformed metadata") {
  const std::string head = "GGUF" + u32(3) + u64(0) + u64(1);
  check_error(head + gstr("k") + u32(13) + u64(0), "metadata 'k' has unknown value type 13");
  check_error(head + gstr("k") + vt(VT::ARRAY) + u32(77) + u64(1) + u64(0), "unknown array element type 77");
  check_error(head + gstr("k") + vt(VT::BOOL) + "\x02", "is a bool with byte value 2");
  // Arrays nested deeper than 8.
  std::string deep = gstr("k") + vt(VT::ARRAY);
  for (int i = 0; i < 12; ++i) deep += vt(VT::ARRAY) + u64(1);
  deep += vt(VT::UINT8) + u64(0);
  check_error(head + deep, "nested deeper than 8");
  // Duplicate keys.
  check_error("GGUF" + u32(3) + u64(0) + u64(2) + gstr("k") + vt(VT::UINT8) + "\1" + gstr("k") + vt(VT::UINT8) + "\1",
              "duplicate metadata key 'k'");
  // general.alignment of the wrong type, zero, or not a power of two.
  Builder b = one_tensor();
  b.kv("general.alignment", VT::UINT64, u64(32));
  check_error(b.build(), "general.alignment is uint64, expected uint32");
  for (std::uint32_t a : {0u, 3u, 48u}) {
    Builder c = one_tensor();
    c.kv_u32("general.alignment", a);
    check_error(c.build(), "general.alignment is " + std::to_string(a) + ", expected a power of two");
  }
}

TEST_CASE("gguf: malformed tensor infos and data ranges") {
  {
    Builder b = one_tensor();
    b.tensors[0].ne = {1, 1, 1, 1, 4};
    b.tensors[0].data = floats({1, 2, 3, 4});
    check_error(b.build(), "tensor 'w' has n_dims 5 (at most 4)");
  }
  {
    Builder b = one_tensor();
    b.tensors[0].ne = {1ull << 32, 1ull << 32};
    check_error(b.build(), "tensor 'w': the product of its dimensions overflows");
  }
  {
    Builder b = one_tensor();
    b.tensors[0].ne = {~0ull, 1};
    check_error(b.build(), "negative dimension ne[0] = -1");
  }
  {
    Builder b = one_tensor();
    b.tensors[0].type = 19;  // IQ1_S
    check_error(b.build(), "tensor 'w' has tensor type IQ1_S (19), which attnviz does not read");
  }
  {
    Builder b = one_tensor();
    b.tensors[0].type = 1234;
    check_error(b.build(), "tensor type unknown (1234)");
  }
  {
    Builder b = one_tensor();
    b.tensors[0].type = static_cast<std::uint32_t>(GgmlType::Q8_0);
    b.tensors[0].ne = {16, 2};
    check_error(b.build(), "row length ne[0] = 16 is not a multiple of the block size 32");
  }
  {
    Builder b = one_tensor();
    b.tensors[0].offset = 4;  // not aligned
    check_error(b.build(), "tensor 'w' data offset 4 is not a multiple of the alignment 32");
  }
  {
    Builder b = one_tensor();
    std::string s = b.build();
    s.resize(s.size() - 1);  // data cut short
    check_error(s, "tensor 'w' data (16 bytes at data offset 0");
    Builder c = one_tensor();
    c.tensors[0].offset = 1ull << 62;
    c.write_data = false;
    check_error(c.build(), "extends past the end of the file");
  }
  {
    Builder b = one_tensor();
    b.tensor("v", {16}, GgmlType::F32, std::string(64, '\0'));
    b.tensors[1].offset = 0;  // on top of 'w'
    check_error(b.build(), "overlap in the data section");
  }
  {
    Builder b = one_tensor();
    b.tensor("w", {1}, GgmlType::F32, floats({1}));
    check_error(b.build(), "duplicate tensor name 'w'");
  }
}

TEST_CASE("gguf: describe_gguf lists architecture, sizes, types and tensors") {
  Builder b;
  b.kv_str("general.architecture", "llama")
      .kv_u32("llama.block_count", 1)
      .kv_u32("llama.embedding_length", 32)
      .kv_u32("llama.attention.head_count", 4)
      .kv_u32("llama.feed_forward_length", 64)
      .kv_str("tokenizer.ggml.model", "llama")
      .kv("tokenizer.ggml.tokens", VT::ARRAY, vt(VT::STRING) + u64(2) + gstr("<unk>") + gstr("<s>"))
      .tensor("token_embd.weight", {32, 2}, GgmlType::F32, std::string(256, '\0'))
      .tensor("blk.0.attn_q.weight", {32, 32}, GgmlType::Q8_0, std::string(34 * 32, '\0'));
  const GgufFile f = GgufFile::parse(b.build(), "d.gguf");
  const std::string d = describe_gguf(f);
  INFO(d);
  CHECK(d.find("architecture: \"llama\"") != std::string::npos);
  CHECK(d.find("layers 1  dim 32  heads 4  kv heads 4 (no key: = heads)  ffn 64  vocab 2 (tokens)") != std::string::npos);
  CHECK(d.find("rope: base 10000 (no key: default)") != std::string::npos);
  CHECK(d.find("tensors: 2 (F32 1, Q8_0 1)") != std::string::npos);
  CHECK(d.find("parameters: 1,088 ") != std::string::npos);
  CHECK(d.find("tokenizer: \"llama\", 2 tokens") != std::string::npos);
  CHECK(d.find("blk.0.attn_q.weight  Q8_0  [32, 32]") != std::string::npos);
}

namespace {

const std::filesystem::path kStories = shared_models_dir() / "stories260K" / "stories260K.gguf";
const bool kHaveStories = std::filesystem::exists(kStories);

}  // namespace

// Needs ../shared/models: skipped (and reported as skipped by doctest) when absent; CTest's entry
// test_gguf_models runs it with --no-skip and exits 77 (CTest: Skipped) when the file is missing.
TEST_CASE("gguf: stories260K.gguf (real file converted by llama.cpp)" * doctest::test_suite("models") *
          doctest::skip(!kHaveStories)) {
  require_shared_model(kStories);
  const GgufFile f = GgufFile::open(kStories);
  CHECK(f.version() == 3);
  CHECK(f.get_string("general.architecture") == "llama");
  CHECK(f.get_int("llama.block_count") == 5);
  CHECK(f.get_int("llama.embedding_length") == 64);
  CHECK(f.get_int("llama.attention.head_count") == 8);
  CHECK(f.get_int("llama.attention.head_count_kv") == 4);
  CHECK(f.get_int("llama.feed_forward_length") == 172);
  CHECK(f.get_string("tokenizer.ggml.model") == "llama");
  const auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  REQUIRE(tokens.size() == 512);
  CHECK(tokens[3] == "<0x00>");
  CHECK(tokens[258] == "<0xFF>");
  CHECK(f.get_float_array("tokenizer.ggml.scores").size() == 512);
  CHECK(f.get_int_array("tokenizer.ggml.token_type").size() == 512);
  CHECK(f.get_int("tokenizer.ggml.bos_token_id") == 1);
  CHECK(f.get_int("tokenizer.ggml.eos_token_id") == 2);
  std::uint64_t params = 0;
  for (const auto& t : f.tensors()) {
    CHECK(t.type == GgmlType::F32);
    params += t.numel();
  }
  // 260,032 parameters plus the untied copy of the embedding the converter wrote as output.weight (if any).
  const auto* out = f.find("output.weight");
  CHECK(params - (out ? out->numel() : 0) == 260032);
  const Mat k = f.matrix("blk.0.attn_k.weight", 32, 64);
  CHECK(k.allFinite());
  CHECK(k.norm() > 0);
  const Mat emb = f.matrix("token_embd.weight", 512, 64);
  if (out) CHECK(f.matrix("output.weight", 512, 64) == emb);
  const std::string d = describe_gguf(f);
  CHECK(d.find("layers 5  dim 64  heads 8  kv heads 4  ffn 172  vocab") != std::string::npos);
}

TEST_CASE("gguf: the committed fixtures (scripts/make_gguf_fixtures.py) load and dequantize as numpy does") {
  const auto dir = source_dir() / "tests" / "data" / "gguf";
  struct Case {
    const char* name;
    const char* arch;
    const char* tensor;
    GgmlType type;
  };
  const Case cases[] = {{"llama_mha_f32", "llama", "blk.0.attn_k.weight", GgmlType::F32},
                        {"llama_gqa4_f16_untied", "llama", "blk.0.attn_k.weight", GgmlType::F16},
                        {"llama_qkvbias_q8_0_ropelinear", "llama", "blk.0.attn_k.weight", GgmlType::Q8_0},
                        {"llama_q4_0_untied", "llama", "blk.0.attn_k.weight", GgmlType::Q4_0},
                        {"gpt2_tiny", "gpt2", "blk.0.attn_qkv.weight", GgmlType::F32},
                        {"llama_kquant_mixed", "llama", "blk.0.attn_k.weight", GgmlType::Q4_K}};
  for (const auto& c : cases) {
    INFO(c.name);
    const GgufFile f = GgufFile::open(dir / (std::string(c.name) + ".gguf"));
    CHECK(f.get_string("general.architecture") == c.arch);
    CHECK(f.get_string("general.name") == c.name);
    const auto* t = f.find(c.tensor);
    REQUIRE(t != nullptr);
    CHECK(t->type == c.type);
    const NpyArray ref = parse_npy(slurp(dir / (std::string(c.name) + ".blk0_k.npy")), c.name);
    REQUIRE(ref.shape.size() == 2);
    const Mat m = f.matrix(c.tensor, ref.shape[0], ref.shape[1]);
    CHECK(std::equal(m.data(), m.data() + m.size(), ref.values.begin()));  // bit for bit
    CHECK(describe_gguf(f).find(ggml_type_name(static_cast<std::uint32_t>(c.type))) != std::string::npos);
  }
  const GgufFile g = GgufFile::open(dir / "llama_gqa4_f16_untied.gguf");
  CHECK(g.alignment() == 64);
  CHECK(g.get_float("llama.rope.freq_base") == 500000.0);
  const GgufFile q = GgufFile::open(dir / "llama_qkvbias_q8_0_ropelinear.gguf");
  CHECK(q.get_string("llama.rope.scaling.type") == "linear");
  CHECK(q.get_float("llama.rope.scaling.factor") == 4.0);
  CHECK(q.find("blk.1.attn_v.bias") != nullptr);
}

TEST_CASE("gguf: the fuzz seeds parse (tests/fuzz/corpus/gguf, written by make_gguf_fixtures.py)") {
  const auto dir = source_dir() / "tests" / "fuzz" / "corpus" / "gguf";
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    INFO(e.path());
    const GgufFile f = GgufFile::open(e.path());
    for (const auto& t : f.tensors()) CHECK(f.dequantize(t).size() == t.numel());
    ++n;
  }
  CHECK(n >= 4);
  const GgufFile f = GgufFile::open(dir / "all_types.gguf");
  CHECK(f.alignment() == 16);
  CHECK(f.get_string("s") == "héllo");
  CHECK(f.dequantize(*f.find("bf16")) == std::vector<float>{1.f, -3.f, 0.15625f, 0.f});
  CHECK(f.dequantize(*f.find("f16")) == std::vector<float>{1.f, -2.f, 0.5f, 4.f});
}

TEST_CASE("gguf: attnviz inspect on a GGUF file; a malformed one exits 2 with one line") {
  const auto fixture = source_dir() / "tests" / "data" / "gguf" / "llama_gqa4_f16_untied.gguf";
  const RunResult ok = run_cli("inspect '" + fixture.string() + "'");
  INFO(ok.out);
  CHECK(ok.code == 0);
  CHECK(ok.out.find("llama_gqa4_f16_untied.gguf: GGUF v3") != std::string::npos);
  CHECK(ok.out.find("layers 2  dim 32  heads 8  kv heads 2  ffn 40  vocab 32 (tokens)  context 64") !=
        std::string::npos);
  CHECK(ok.out.find("rope: base 500000") != std::string::npos);
  CHECK(ok.out.find("tensors: 21 (F16 15, F32 6)") != std::string::npos);
  CHECK(ok.out.find("output.weight             F16   [32, 32]") != std::string::npos);

  const auto dir = temp_dir("gguf_cli");
  std::string bytes = slurp(fixture);
  bytes.resize(bytes.size() / 2);  // tensor data cut off
  spit(dir / "cut.gguf", bytes);
  const RunResult bad = run_cli("inspect '" + (dir / "cut.gguf").string() + "'");
  INFO(bad.out);
  CHECK(bad.code == 2);
  CHECK(bad.out.find("cut.gguf: tensor '") != std::string::npos);
  CHECK(bad.out.find("extends past the end of the file") != std::string::npos);
  CHECK(std::count(bad.out.begin(), bad.out.end(), '\n') == 1);
}

// The fixtures' purpose: the llama/gpt2 forward pass (models/lm.hpp) on each file reproduces the
// numpy reference (HF layout, HF RoPE) for logits and every layer's attention weights.
TEST_CASE("gguf fixtures: load_lm_gguf + forward match the numpy reference forward pass") {
  const auto dir = source_dir() / "tests" / "data" / "gguf";
  const std::vector<int> tokens = {1, 5, 9, 2, 17, 30, 3, 11, 4, 25};  // tests/data/gguf/README.md
  for (const char* name : {"llama_mha_f32", "llama_gqa4_f16_untied", "llama_qkvbias_q8_0_ropelinear",
                           "llama_q4_0_untied", "gpt2_tiny", "llama_kquant_mixed"}) {
    INFO(name);
    const std::string base = (dir / name).string();
    auto lm = models::load_lm_gguf(base + ".gguf");
    auto cache = lm.model->new_cache(16);
    models::AttentionCollector sink;
    models::LmForwardOptions opt;
    opt.all_logits = true;
    const Mat logits = lm.model->forward(tokens, cache, &sink, opt);
    const NpyArray ref = parse_npy(slurp(base + ".logits.npy"), name);
    REQUIRE(ref.shape == std::vector<std::int64_t>{10, logits.cols()});
    REQUIRE(logits.rows() == 10);
    float dl = 0;
    for (Eigen::Index i = 0; i < logits.size(); ++i) dl = std::max(dl, std::fabs(logits.data()[i] - ref.values[i]));
    CHECK(dl < 1e-4f);
    const NpyArray att = parse_npy(slurp(base + ".attn.npy"), name);
    const int L = static_cast<int>(att.shape[0]), H = static_cast<int>(att.shape[1]), T = 10;
    float da = 0;
    for (int l = 0; l < L; ++l) {
      const auto& w = sink.w.at("decoder.layer" + std::to_string(l) + ".self");
      REQUIRE(w.H == H);
      REQUIRE(w.Nq == T);
      REQUIRE(w.Nk == T);
      for (int h = 0; h < H; ++h)
        for (int i = 0; i < T * T; ++i) da = std::max(da, std::fabs(w.at(0, h)[i] - att.values[(l * H + h) * T * T + i]));
    }
    CHECK(da < 1e-5f);
  }
}

TEST_CASE("gguf: a tensor with no elements (a zero in ne) dequantizes to nothing") {
  // Found by fuzz_gguf in CI: a zero-size tensor in a file with no data section reached memcpy with
  // a null source (undefined behaviour even for 0 bytes).
  Builder b;
  b.tensor("none", {0, 4}, GgmlType::F32, "");
  const GgufFile f = GgufFile::parse(b.build(), "zero.gguf");
  REQUIRE(f.find("none") != nullptr);
  CHECK(f.dequantize(*f.find("none")).empty());
  CHECK(f.matrix("none", 4, 0).size() == 0);
}

TEST_CASE("float_to_half: every finite half round-trips; ties go to even; overflow is infinity") {
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7C00) == 0x7C00) continue;   // inf / nan
    const float f = attnviz::half_to_float(static_cast<std::uint16_t>(h));
    REQUIRE_MESSAGE(attnviz::float_to_half(f) == h, h);
  }
  CHECK(attnviz::float_to_half(1.0f) == 0x3C00);
  CHECK(attnviz::float_to_half(1.0f + std::ldexp(1.f, -11)) == 0x3C00);      // tie -> even (down)
  CHECK(attnviz::float_to_half(1.0f + 3 * std::ldexp(1.f, -11)) == 0x3C02);  // tie -> even (up)
  CHECK(attnviz::float_to_half(65519.f) == 0x7BFF);
  CHECK(attnviz::float_to_half(65520.f) == 0x7C00);
  CHECK(attnviz::float_to_half(-1e9f) == 0xFC00);
  CHECK(attnviz::float_to_half(std::ldexp(1.f, -25)) == 0x0000);          // tie between 0 and 2^-24 -> 0
  CHECK(attnviz::float_to_half(std::ldexp(3.f, -25)) == 0x0002);          // 1.5 * 2^-24 -> 2 * 2^-24
  CHECK((attnviz::float_to_half(std::nanf("")) & 0x7C00) == 0x7C00);
}

TEST_CASE("Q8_0 quantize: the llama.cpp reference rule, and dequantize gives x within half a step") {
  std::vector<float> x(64);
  for (int i = 0; i < 32; ++i) x[i] = static_cast<float>(i - 16) * 0.25f;   // amax 4 -> d = 4/127
  for (int i = 32; i < 64; ++i) x[i] = std::sin(static_cast<float>(i)) * 3.0f;
  const auto q = ggml_quantize_q8_0(x.data(), x.size());
  REQUIRE(q.size() == 2 * 34);
  std::uint16_t d0 = 0;
  std::memcpy(&d0, q.data(), 2);
  CHECK(d0 == attnviz::float_to_half(4.0f / 127.0f));
  CHECK(static_cast<std::int8_t>(q[2 + 0]) == -127);    // -4 / d
  CHECK(static_cast<std::int8_t>(q[2 + 16]) == 0);
  CHECK(static_cast<std::int8_t>(q[2 + 18]) == 16);     // x = 0.5: 0.5 * 127 / 4 = 15.875 -> 16
  std::vector<float> back(64);
  ggml_dequantize(GgmlType::Q8_0, q.data(), back.data(), back.size());
  for (int b = 0; b < 2; ++b) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
    for (int i = 0; i < 32; ++i) CHECK(std::fabs(back[b * 32 + i] - x[b * 32 + i]) <= amax / 127 * 0.5f + amax * 1e-3f);
  }
  CHECK_THROWS(ggml_quantize_q8_0(x.data(), 31));
}

// ---- K-quants (Q2_K .. Q6_K): super-blocks of 256 ------------------------------------------------------

namespace {
std::string bytes_of(std::initializer_list<int> v) {
  std::string s;
  for (int b : v) s += static_cast<char>(b);
  return s;
}
std::string repeat(int byte, int n) { return std::string(static_cast<std::size_t>(n), static_cast<char>(byte)); }
}  // namespace

// Single blocks built by hand from the layouts (README "GGUF"), with values written down here.
TEST_CASE("gguf: K-quant blocks built by hand dequantize to the written-down values") {
  // Q4_K: d = dmin = 1 (f16 0x3C00). Six-bit scales sc = 1,2,3,4,17,33,49,63 and mins
  // m = 0,5,10,20,48,2,16,45 packed (the top 2 bits of scales and mins 4-7 differ, so mixing
  // them up shows): bytes 0-3 = sc[0..3] | top2(sc[4..7]) << 6, bytes 4-7 =
  // m[0..3] | top2(m[4..7]) << 6, bytes 8-11 = low4(sc[4..7]) | low4(m[4..7]) << 4.
  const int sc[8] = {1, 2, 3, 4, 17, 33, 49, 63}, mn[8] = {0, 5, 10, 20, 48, 2, 16, 45};
  const std::string scales12 = bytes_of({0x41, 0x82, 0xC3, 0xC4, 0xC0, 0x05, 0x4A, 0x94, 0x01, 0x21, 0x01, 0xDF});
  // qs[i]: low nibble i % 16 (sub-block 2c, c = i / 32), high nibble 15 - i % 16 (sub-block 2c + 1).
  std::string qs;
  for (int i = 0; i < 128; ++i) qs += static_cast<char>((i % 16) | ((15 - i % 16) << 4));
  const std::string q4k = u16(0x3C00) + u16(0x3C00) + scales12 + qs;
  // Q5_K: d = 0.5 (0x3800), dmin = 0, the same scales; qh[l] = 0x55 for odd l (bits 0,2,4,6: the
  // even sub-blocks' element l gets +16), 0xAA for even l (the odd sub-blocks'): +16 iff l + j is odd.
  std::string qh;
  for (int l = 0; l < 32; ++l) qh += static_cast<char>(l % 2 ? 0x55 : 0xAA);
  const std::string q5k = u16(0x3800) + u16(0x0000) + scales12 + qh + qs;
  // Q6_K: ql quarters 0xA5, 0x5A, 0x3C, 0xC3; qh halves 0xE4 (bit pairs 0,1,2,3), 0x1B (3,2,1,0);
  // int8 scales j - 8; d = 1. Element 128h + 32k + l has q - 32 = Q6[h][k] and scale (e / 16) - 8:
  // h0: k0 lo(A5)=5|0<<4, k1 lo(5A)=10|1<<4, k2 hi(A5)=10|2<<4, k3 hi(5A)=5|3<<4  -> -27, -6, 10, 21
  // h1: k0 lo(3C)=12|3<<4, k1 lo(C3)=3|2<<4, k2 hi(3C)=3|1<<4, k3 hi(C3)=12|0<<4 -> 28, 3, -13, -20
  const int Q6[2][4] = {{-27, -6, 10, 21}, {28, 3, -13, -20}};
  std::string s6;
  for (int j = 0; j < 16; ++j) s6 += static_cast<char>(static_cast<std::int8_t>(j - 8));
  const std::string q6k = repeat(0xA5, 32) + repeat(0x5A, 32) + repeat(0x3C, 32) + repeat(0xC3, 32) +
                          repeat(0xE4, 32) + repeat(0x1B, 32) + s6 + u16(0x3C00);
  // Q2_K: scales[j] = j | (15 - j) << 4 (scale j, min 15 - j); qs halves 0xE4, 0x1B; d = dmin = 1.
  // Element 128h + 32k + l: q = k (h = 0) or 3 - k (h = 1); x = (e/16) * q - (15 - e/16).
  std::string s2;
  for (int j = 0; j < 16; ++j) s2 += static_cast<char>(j | ((15 - j) << 4));
  const std::string q2k = s2 + repeat(0xE4, 32) + repeat(0x1B, 32) + u16(0x3C00) + u16(0x3C00);
  // Q3_K: hmask = 0x0F (bits 0-3: half 0 keeps its 2-bit value, half 1 has 4 subtracted); qs halves
  // 0xE4, 0x1B -> q = k (h = 0), 3 - k - 4 (h = 1). Scales 2j - 16 stored as 2j + 16 in six bits:
  // low nibbles in bytes j % 8 (high nibble for j >= 8), top 2 bits at bit 2*(j/4) of byte 8 + j % 4.
  const std::string q3k = repeat(0x0F, 32) + repeat(0xE4, 32) + repeat(0x1B, 32) +
                          bytes_of({0x00, 0x22, 0x44, 0x66, 0x88, 0xAA, 0xCC, 0xEE, 0xA5, 0xA5, 0xA5, 0xA5}) +
                          u16(0x3C00);
  Builder b;
  b.tensor("q2", {256}, GgmlType::Q2_K, q2k)
      .tensor("q3", {256}, GgmlType::Q3_K, q3k)
      .tensor("q4", {256}, GgmlType::Q4_K, q4k)
      .tensor("q5", {256}, GgmlType::Q5_K, q5k)
      .tensor("q6", {256}, GgmlType::Q6_K, q6k);
  const GgufFile f = GgufFile::parse(b.build(), "kq.gguf");
  CHECK(f.find("q2")->nbytes == 84);
  CHECK(f.find("q3")->nbytes == 110);
  CHECK(f.find("q4")->nbytes == 144);
  CHECK(f.find("q5")->nbytes == 176);
  CHECK(f.find("q6")->nbytes == 210);
  const auto v2 = f.dequantize(*f.find("q2")), v3 = f.dequantize(*f.find("q3")), v4 = f.dequantize(*f.find("q4")),
             v5 = f.dequantize(*f.find("q5")), v6 = f.dequantize(*f.find("q6"));
  REQUIRE(v4.size() == 256);
  int bad = 0;
  for (int e = 0; e < 256; ++e) {
    const int j32 = e / 32, l = e % 32, j16 = e / 16, h = e / 128, k = (e % 128) / 32;
    const int q4 = j32 % 2 ? 15 - l % 16 : l % 16;
    bad += v4[e] != static_cast<float>(sc[j32] * q4 - mn[j32]);
    bad += v5[e] != 0.5f * static_cast<float>(sc[j32] * (q4 + ((l + j32) % 2 ? 16 : 0)));
    bad += v6[e] != static_cast<float>((j16 - 8) * Q6[h][k]);
    const int q2 = h == 0 ? k : 3 - k;
    bad += v2[e] != static_cast<float>(j16 * q2 - (15 - j16));
    const int q3 = h == 0 ? k : 3 - k - 4;
    bad += v3[e] != static_cast<float>((2 * j16 - 16) * q3);
  }
  CHECK(bad == 0);
  // Spot values, written out: Q4_K element 200 = sub-block 6 (sc 49, m 48; even: the low nibble) of
  // qs[32*3 + 8] = qs[104], whose low nibble is 104 % 16 = 8; element 232 = sub-block 7, its high nibble 7.
  CHECK(v4[200] == 49.f * 8 - 16);
  CHECK(v4[232] == 63.f * 7 - 45);
  CHECK(v6[255] == 7.f * -20);
  CHECK(v3[200] == 8.f * -3);      // half 1, k = 2: q = 3 - 2 - 4; sub-block 12: scale 2*12 - 16
  CHECK(v2[40] == 2.f * 1 - 13);   // sub-block 2 (scale 2, min 13), k = 1
}

// kquant_blocks.gguf (scripts/make_gguf_fixtures.py): 6 super-blocks per type quantized by a numpy
// quantizer written from the layouts, with the weights before quantization, the expected values and
// each element's step. The expected values are computed in float64 from the integer fields (before
// any packing) and cast to float32: the products are exact in float32 and the C++ decoder rounds once,
// as the cast does, so the match is bit for bit. The step check compares with the original weights,
// so a packing/unpacking mistake shared by the numpy encoder and the C++ decoder would still have to
// reproduce the weights, and one in either alone breaks the bit match.
TEST_CASE("gguf: K-quant fixture blocks match numpy bit for bit and lie within half a step of the weights") {
  const GgufFile f = GgufFile::open(source_dir() / "tests" / "data" / "gguf" / "kquant_blocks.gguf");
  for (const auto& [name, type] : {std::pair{"q2_k", GgmlType::Q2_K}, std::pair{"q3_k", GgmlType::Q3_K},
                                   std::pair{"q4_k", GgmlType::Q4_K}, std::pair{"q5_k", GgmlType::Q5_K},
                                   std::pair{"q6_k", GgmlType::Q6_K}}) {
    INFO(name);
    const auto* t = f.find(name);
    REQUIRE(t != nullptr);
    CHECK(t->type == type);
    CHECK(t->ne == std::vector<std::uint64_t>{512, 3});
    const Mat m = f.matrix(name, 3, 512);
    const Mat x = f.matrix(std::string(name) + ".x", 3, 512);
    const Mat want = f.matrix(std::string(name) + ".deq", 3, 512);
    const Mat step = f.matrix(std::string(name) + ".step", 3, 512);
    int differ = 0, outside = 0;
    double worst = 0;
    for (Eigen::Index i = 0; i < m.size(); ++i) {
      differ += std::memcmp(&m.data()[i], &want.data()[i], 4) != 0;
      const double err = std::fabs(static_cast<double>(m.data()[i]) - x.data()[i]);
      outside += err > 0.5 * step.data()[i] * (1 + 1e-6) + 1e-7 * std::fabs(x.data()[i]);
      if (step.data()[i] > 0) worst = std::max(worst, err / step.data()[i]);
    }
    CHECK(differ == 0);
    CHECK(outside == 0);
    CHECK(worst > 0.3);  // the bound is not vacuous: some weights sit far from their level
    for (int i = 0; i < 32; ++i) CHECK(m(0, i) == 0.f);  // the all-zero sub-block
  }
}

TEST_CASE("gguf: K-quant tensors that do not fit: row length, truncation, --max-mib; other types refused") {
  {
    Builder b = one_tensor();
    b.tensors[0].type = static_cast<std::uint32_t>(GgmlType::Q4_K);
    b.tensors[0].ne = {128, 2};
    b.tensors[0].data = std::string(144, '\0');
    check_error(b.build(), "tensor 'w' is Q4_K but its row length ne[0] = 128 is not a multiple of the block size 256");
  }
  {
    Builder b = one_tensor();  // 2 rows of Q6_K need 420 bytes; the file ends after 419
    b.tensors[0].type = static_cast<std::uint32_t>(GgmlType::Q6_K);
    b.tensors[0].ne = {256, 2};
    b.tensors[0].data = std::string(420, '\0');
    std::string s = b.build();
    s.resize(s.size() - 1);
    check_error(s, "tensor 'w' data (420 bytes at data offset 0");
  }
  for (const auto& [type, name] : {std::pair{16u, "IQ2_XXS"}, std::pair{9u, "Q8_1"}, std::pair{15u, "Q8_K"},
                                   std::pair{23u, "IQ4_XS"}}) {
    Builder b = one_tensor();
    b.tensors[0].type = type;
    check_error(b.build(), fmt::format("tensor 'w' has tensor type {} ({}), which attnviz does not read", name, type));
  }
  // The float32 copy of a K-quant tensor is 7-12 times its bytes: --max-mib is checked before it is made.
  Builder b;
  b.tensor("big", {256, 1024}, GgmlType::Q2_K, std::string(84 * 1024, '\0'));  // 84 KiB -> 1 MiB of float32
  const GgufFile f = GgufFile::parse(b.build(), "big.gguf");
  set_max_array_bytes(512 << 10);
  CHECK_THROWS_WITH_AS(f.matrix("big"), doctest::Contains("big.gguf: tensor 'big' (Q2_K dequantized to float32) needs"),
                       InputError);
  CHECK_THROWS_AS(f.dequantize(*f.find("big")), InputError);
  set_max_array_bytes(0);
  CHECK(f.matrix("big").size() == 256 * 1024);
}

TEST_CASE("gguf: a K-quant file with a bad row length or cut short: the CLI exits 2 with one line") {
  const auto dir = temp_dir("gguf_kquant_cli");
  Builder b;
  b.kv_str("general.architecture", "llama");
  b.tensor("blk.0.attn_q.weight", {320, 2}, GgmlType::Q5_K, std::string(176 * 2, '\0'));
  spit(dir / "rows.gguf", b.build());
  const RunResult r = run_cli("inspect '" + (dir / "rows.gguf").string() + "'");
  INFO(r.out);
  CHECK(r.code == 2);
  CHECK(r.out.find("rows.gguf: tensor 'blk.0.attn_q.weight' is Q5_K but its row length ne[0] = 320 is not a multiple "
                   "of the block size 256") != std::string::npos);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);

  std::string bytes = slurp(source_dir() / "tests" / "data" / "gguf" / "llama_kquant_mixed.gguf");
  bytes.resize(bytes.size() - 1000);  // inside output.weight (Q6_K, the last tensor)
  spit(dir / "cut.gguf", bytes);
  const RunResult c = run_cli("generate --model '" + (dir / "cut.gguf").string() + "' --prompt ab --steps 2");
  INFO(c.out);
  CHECK(c.code == 2);
  CHECK(c.out.find("cut.gguf: tensor 'output.weight' data (") != std::string::npos);
  CHECK(c.out.find("extends past the end of the file") != std::string::npos);
  CHECK(std::count(c.out.begin(), c.out.end(), '\n') == 1);
}

// End to end: the Q4_K/Q5_K/Q6_K llama (rows of 256) against the same model before quantization.
// The exact comparison (against the dequantized weights, 1e-4) is in the fixture forward test above;
// here the quantization error itself: the numpy quantizer's logits differ from the float model's by
// rms 0.17 (of rms 0.99) and at most 0.65; the bound is rms <= 0.25 x the float model's rms, and the
// greedy (argmax) token must agree wherever the float model's top-2 margin exceeds 0.2 (8 of the 10
// positions; the other two have margins 0.03 and 0.11, below the quantization noise).
TEST_CASE("gguf: the K-quant llama fixture generates what its unquantized model does") {
  const auto dir = source_dir() / "tests" / "data" / "gguf";
  const std::vector<int> tokens = {1, 5, 9, 2, 17, 30, 3, 11, 4, 25};
  auto lm = models::load_lm_gguf(dir / "llama_kquant_mixed.gguf");
  auto cache = lm.model->new_cache(16);
  models::LmForwardOptions opt;
  opt.all_logits = true;
  const Mat logits = lm.model->forward(tokens, cache, nullptr, opt);
  const NpyArray f32 = parse_npy(slurp(dir / "llama_kquant_mixed.logits_f32.npy"), "f32");
  REQUIRE(f32.shape == std::vector<std::int64_t>{10, 32});
  REQUIRE(logits.rows() == 10);
  REQUIRE(logits.cols() == 32);
  double se = 0, s0 = 0;
  int compared = 0, agree = 0;
  for (int t = 0; t < 10; ++t) {
    std::vector<float> row(f32.values.begin() + t * 32, f32.values.begin() + (t + 1) * 32);
    for (int v = 0; v < 32; ++v) {
      se += std::pow(logits(t, v) - row[v], 2);
      s0 += std::pow(row[v], 2);
    }
    const int best = static_cast<int>(std::max_element(row.begin(), row.end()) - row.begin());
    Eigen::Index qbest = 0;
    logits.row(t).maxCoeff(&qbest);
    std::vector<float> sorted = row;
    std::sort(sorted.begin(), sorted.end());
    if (sorted[31] - sorted[30] > 0.2f) {
      ++compared;
      agree += qbest == best;
    }
  }
  CHECK(compared == 8);
  CHECK(agree == compared);
  CHECK(std::sqrt(se / s0) <= 0.25);
  CHECK(std::sqrt(se / s0) >= 0.05);  // the file really is quantized (not the float weights)
}
