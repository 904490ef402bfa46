// Issue 14 target: under `prlimit --as=4G`, no crafted file makes attnviz exceed the limit or run
// longer than a few seconds before it refuses: npz bombs, huge npy shapes, huge safetensors
// headers, huge JSON arrays, GGUF headers with huge counts. Each run must exit 2 with a message
// naming the file, never "out of memory" (which would mean the limit was hit), within 5 s.
#include "test_safety_util.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

using namespace attnviz::test;

namespace {

struct Timed {
  RunResult r;
  double seconds = 0;
};

Timed run_limited(const fs::path& file) {
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer reserves terabytes of shadow address space at start-up, so no sanitized
  // binary can start under `prlimit --as=4G`: this target is measured by the plain build's run.
  std::fprintf(stderr, "test_safety_limits: skipped in an AddressSanitizer build (its shadow memory cannot "
                       "start under prlimit --as=4G); the plain build runs it\n");
  std::exit(77);
#endif
  const auto t0 = std::chrono::steady_clock::now();
  Timed t;
  // prlimit wraps the attnviz binary (run_cli pastes its arguments after the executable, so the
  // limit is set through a shell one level up).
  const std::string cmd = "prlimit --as=4294967296 '" + std::string(ATTNVIZ_EXE) + "' inspect '" + file.string() + "' 2>&1";
  t.r = run_shell(cmd);
  t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return t;
}

void expect_refused(const fs::path& file, const std::string& needle) {
  INFO(file.filename().string());
  const Timed t = run_limited(file);
  INFO(t.r.out);
  CHECK(t.r.code == 2);
  CHECK(t.r.out.find(file.string()) != std::string::npos);
  CHECK(t.r.out.find("out of memory") == std::string::npos);
  CHECK(t.r.out.find(needle) != std::string::npos);
  CHECK(t.seconds < 5.0);
  MESSAGE(file.filename().string() << ": refused in " << t.seconds << " s");
}

}  // namespace

TEST_CASE("crafted files under prlimit --as=4G are refused quickly, within the limit") {
  REQUIRE(std::system("prlimit --version > /dev/null 2>&1") == 0);
  fs::path d = temp_dir("crafted");

  // 1. An npz bomb: 11.8 GB of zeros in ~11.5 MB (deflate's ordinary ratio).
  const std::uint64_t zeros = 11'800'000'000ull / 4 * 4;
  spit(d / "bomb.npz", zip_bytes({deflate_bomb("attention.npy",
                                               npy_bytes("<f4", "(" + std::to_string(zeros / 4) + ",)", ""), zeros)}));
  expect_refused(d / "bomb.npz", "--max-mib");

  // 2. A bomb just over the default limit under --as=4G (512 MiB) but far below the machine's RAM.
  const std::uint64_t mid = std::uint64_t{1200} << 20;
  spit(d / "bomb_1200m.npz", zip_bytes({deflate_bomb("attention.npy",
                                                     npy_bytes("<f4", "(" + std::to_string(mid / 4) + ",)", ""), mid)}));
  expect_refused(d / "bomb_1200m.npz", "--max-mib");

  // 3. An npy whose header claims a huge shape over a few bytes of data.
  spit(d / "huge_shape.npy", npy_bytes("<f4", "(1000000, 1000000)", std::string(64, '\0')));
  expect_refused(d / "huge_shape.npy", "needs");
  spit(d / "overflow.npy", npy_bytes("<f8", "(1099511627776, 1099511627776, 1099511627776)", ""));
  expect_refused(d / "overflow.npy", "overflows");

  // 4. Safetensors: a header length of 2^62, and a tensor whose shape claims 2^40 elements.
  spit(d / "huge_header.safetensors", u64(std::uint64_t{1} << 62) + "{}");
  expect_refused(d / "huge_header.safetensors", "header length");
  spit(d / "huge_tensor.safetensors",
       safetensors_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[1048576,1048576],\"data_offsets\":[0,4398046511104]}}", ""));
  expect_refused(d / "huge_tensor.safetensors", "past the end");

  // 5. A 600 MB JSON array of zeros: nlohmann's tree would take ~4.8 GB.
  {
    std::string json = "{\"attention\": [[";
    json.reserve(600u << 20);
    while (json.size() < (600u << 20)) json += "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,";
    json += "0]]}";
    spit(d / "huge.json", json);
  }
  expect_refused(d / "huge.json", "--max-mib");
  fs::remove(d / "huge.json");

  // 6. GGUF headers with huge counts and a huge string length.
  const std::string gguf = "GGUF" + u32(3);
  spit(d / "tensors.gguf", gguf + u64(std::uint64_t{1} << 60) + u64(0));
  expect_refused(d / "tensors.gguf", "");
  spit(d / "kv.gguf", gguf + u64(0) + u64(std::uint64_t{1} << 60));
  expect_refused(d / "kv.gguf", "");
  spit(d / "string.gguf", gguf + u64(0) + u64(1) + u64(std::uint64_t{1} << 40) + "key");
  expect_refused(d / "string.gguf", "");
}
