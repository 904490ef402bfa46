// For libFuzzer targets whose parser takes a path: the input is written to a per-process temp file.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>

namespace attnviz::fuzz {

inline std::string& temp_path() {
  static std::string p;
  return p;
}

inline std::string to_temp_file(const std::uint8_t* data, std::size_t size, const char* suffix) {
  const char* dir = std::getenv("TMPDIR");
  std::string path = std::string(dir && *dir ? dir : "/tmp") + "/attnviz_fuzz_" + std::to_string(::getpid()) + suffix;
  if (temp_path().empty()) {  // removed when the fuzzer exits normally
    temp_path() = path;
    std::atexit([] { std::remove(temp_path().c_str()); });
  }
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) __builtin_trap();
  if (size && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
  return path;
}

}  // namespace attnviz::fuzz
