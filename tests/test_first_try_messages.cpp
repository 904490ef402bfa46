// Issue 14 item 25 (messages): range and finiteness checks are usage errors (exit 1) with a message,
// and inspect says how to see the top keys it leaves out of large tensors.
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace attnviz::test;

namespace {
// A little-endian float32 .npy (format 1.0) of shape [q, k] filled with 1/k.
std::string uniform_npy(int q, int k) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(q) + ", " +
                       std::to_string(k) + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = std::string("\x93NUMPY\x01\x00", 8) + u16(static_cast<unsigned>(header.size())) + header;
  const float v = 1.0f / static_cast<float>(k);
  for (int i = 0; i < q * k; ++i) out.append(reinterpret_cast<const char*>(&v), 4);
  return out;
}
}  // namespace

TEST_CASE("render --vmin/--vmax NaN or Inf is a usage error naming the option, and nothing is written") {
  const auto d = temp_dir("vmin");
  for (const std::string bad : {"--vmin nan", "--vmax inf", "--vmin -inf", "--vmax abc"}) {
    RunResult r = run_cli("render heatmap " + sample("alignment_6x7.safetensors").string() + " " + bad + " -o " +
                          (d / "h.png").string());
    CHECK_MESSAGE(r.code == 1, bad << ": " << r.out);
    CHECK_MESSAGE(r.out.find(bad.substr(0, 6)) != std::string::npos, r.out);
    CHECK(r.out.find("cairo") == std::string::npos);
    CHECK_FALSE(fs::exists(d / "h.png"));
  }
  RunResult ok = run_cli("render heatmap " + sample("alignment_6x7.safetensors").string() +
                         " --vmin 0 --vmax 0.5 -o " + (d / "h.png").string());
  CHECK_MESSAGE(ok.code == 0, ok.out);
}

TEST_CASE("align --threshold outside 0..1 is a usage error") {
  for (const std::string t : {"-0.1", "1.5", "nan"}) {
    RunResult r = run_cli("align " + sample("alignment_6x7.safetensors").string() + " --method threshold --threshold " + t);
    CHECK_MESSAGE(r.code == 1, t << ": " << r.out);
    CHECK(r.out.find("--threshold") != std::string::npos);
  }
  RunResult ok = run_cli("align " + sample("alignment_6x7.safetensors").string() + " --method threshold --threshold 0.3");
  CHECK_MESSAGE(ok.code == 0, ok.out);
}

TEST_CASE("inspect names --all-rows when it leaves out the top keys of a large tensor") {
  const auto d = temp_dir("allrows");
  spit(d / "big.npy", uniform_npy(20, 8));
  RunResult r = run_cli("inspect " + (d / "big.npy").string());
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(r.out.find("--all-rows") != std::string::npos);
  RunResult all = run_cli("inspect " + (d / "big.npy").string() + " --all-rows");
  REQUIRE_MESSAGE(all.code == 0, all.out);
  CHECK(all.out.find("--all-rows prints them") == std::string::npos);
  CHECK(all.out.find("h0") != std::string::npos);
  // Small tensors print their top keys and need no hint.
  RunResult small = run_cli("inspect " + sample("alignment_6x7.safetensors").string());
  REQUIRE(small.code == 0);
  CHECK(small.out.find("--all-rows prints them") == std::string::npos);
}

TEST_CASE("range messages are short: no 309-digit bound (CLI11's PositiveNumber printed DBL_MAX in full)") {
  const auto d = temp_dir("ranges");
  const std::string rec = sample("alignment_6x7.safetensors").string();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"train mnist --epochs -3", "--epochs"},
      {"train textcls --dim -1", "--dim"},
      {"train translate --checkpoint-every -2", "--checkpoint-every"},
      {"render heatmap " + rec + " --head -1 -o " + (d / "h.png").string(), "--head"},
      {"render grid " + rec + " --sample nan -o " + (d / "g.png").string(), "--sample"},
      {"train mnist --batch 0", "--batch"},
  };
  for (const auto& [args, option] : cases) {
    RunResult r = run_cli(args);
    CHECK_MESSAGE(r.code == 1, args << ": " << r.out);
    CHECK_MESSAGE(r.out.find(option) != std::string::npos, r.out);
    CHECK_MESSAGE(r.out.size() < 300, args << ": " << r.out);
    CHECK_MESSAGE(r.out.find("17976931348623157") == std::string::npos, r.out);
  }
  CHECK_FALSE(fs::exists(d / "h.png"));
  CHECK_FALSE(fs::exists(d / "g.png"));
}
