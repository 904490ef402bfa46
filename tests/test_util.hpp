// Helpers shared by the tests: a per-test temp folder, running the attnviz CLI, reading and writing
// files, little-endian fields.
#pragma once
#include <array>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>
#include <sys/wait.h>

namespace attnviz::test {

namespace fs = std::filesystem;

// A fresh folder under the build tree for one test case (removed and recreated).
inline fs::path temp_dir(const std::string& name) {
  fs::path p = fs::path(ATTNVIZ_TEST_TMP) / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

inline fs::path source_dir() { return fs::path(ATTNVIZ_SOURCE_DIR); }
inline fs::path sample(const std::string& name) { return source_dir() / "samples" / name; }
// The shared pretrained test models (../shared/models beside the checkout, or $ATTNVIZ_MODELS).
inline fs::path shared_models_dir() {
  if (const char* e = std::getenv("ATTNVIZ_MODELS"); e && *e) return e;
  return source_dir().parent_path() / "shared" / "models";
}
// Returns p (a file or folder under shared_models_dir()) when it exists; otherwise prints one line
// naming it and exits 77, which CTest reports as skipped (SKIP_RETURN_CODE 77, tests/CMakeLists.txt).
inline fs::path require_shared_model(const fs::path& p) {
  if (fs::exists(p)) return p;
  std::cerr << "SKIPPED: " << p << " not found (see ../shared/models/README.md, or set ATTNVIZ_MODELS)\n";
  std::exit(77);
}

struct RunResult {
  int code = -1;        // exit code
  std::string out;      // stdout + stderr
};

// Runs a shell command line: its exit code (-1 if it did not exit normally or could not start) and
// its standard output (add 2>&1 to the command for standard error too).
inline RunResult run_shell(const std::string& cmd) {
  RunResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Runs `attnviz ARGS` through the shell (args are pasted as given: quote them yourself).
inline RunResult run_cli(const std::string& args) {
  return run_shell(std::string("'") + ATTNVIZ_EXE + "' " + args + " 2>&1");
}

inline std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The interop fixtures written by tests/data/interop/make_fixtures.py (numpy, pandas).
inline fs::path interop_fixtures() { return source_dir() / "tests" / "data" / "interop"; }

// A .ref file: the raw little-endian float32 values the fixture script wrote.
inline std::vector<float> read_ref(const fs::path& p) {
  const std::string b = slurp(p);
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), v.size() * 4);
  return v;
}

// Bitwise equality (so -0.0 stays -0.0), except that any NaN equals any NaN (numpy may not keep
// the payload bits).
inline bool same_bits(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  std::uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y;
}

inline void spit(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Little-endian fields as binary formats store them (npy and zip headers, safetensors length).
inline std::string u16(unsigned v) { return {static_cast<char>(v & 0xFF), static_cast<char>((v >> 8) & 0xFF)}; }
inline std::string u32(std::uint32_t v) { return u16(v & 0xFFFF) + u16(v >> 16); }
inline std::string u64(std::uint64_t v) { return u32(static_cast<std::uint32_t>(v)) + u32(static_cast<std::uint32_t>(v >> 32)); }

// Files in a folder (to check that failed commands leave nothing behind).
// The three tiny Hugging Face fixtures of tests/data/hf run through the CLI with `--record WHAT`:
// gpt2 (`generate`, 3 greedy steps), bert (`record encoder`) and vit (`record vit`). Each run's
// result, its record file and the record's tensor prefix ("decoder", "encoder", "vit").
struct TinyHfRun {
  RunResult result;
  std::string file, stack;
};
inline std::vector<TinyHfRun> record_tiny_hf(const fs::path& dir, const std::string& gen_what,
                                             const std::string& enc_what, const std::string& vit_what) {
  const fs::path hf = source_dir() / "tests" / "data" / "hf";
  const std::string g = (dir / "g.safetensors").string(), b = (dir / "b.safetensors").string(),
                    v = (dir / "v.safetensors").string();
  return {{run_cli("generate --model '" + (hf / "gpt2-tiny").string() +
                   "' --prompt 'Hello the cat' --steps 3 --temperature 0 --record " + gen_what + " -o '" + g + "'"),
           g, "decoder"},
          {run_cli("record encoder --model '" + (hf / "bert-tiny").string() + "' --text 'the cat sat' --record " +
                   enc_what + " -o '" + b + "'"),
           b, "encoder"},
          {run_cli("record vit --model '" + (hf / "vit-tiny").string() + "' --image '" +
                   (hf / "vit-tiny.ppm").string() + "' --record " + vit_what + " -o '" + v + "'"),
           v, "vit"}};
}

inline int count_files(const fs::path& dir) {
  int n = 0;
  for (auto& e : fs::directory_iterator(dir)) (void)e, ++n;
  return n;
}

}  // namespace attnviz::test
