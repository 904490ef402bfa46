// Memory limits for data read from files (--max-mib): checked before anything proportional to a
// size declared inside a file is allocated, so a crafted file is refused instead of exhausting memory.
#pragma once
#include <cstdint>
#include <string>

namespace attnviz {

// The largest single array (or file region) a loader may allocate, in bytes. The default is one
// eighth of the smaller of physical memory and the address-space limit (ulimit -v / prlimit --as):
// 3 GiB on a 24 GiB machine, 512 MiB under `prlimit --as=4G`. A loader holds the file bytes, the
// float32 copy and the record at once, so one eighth keeps the peak well inside either limit.
std::uint64_t max_array_bytes();
std::uint64_t default_max_array_bytes();
void set_max_array_bytes(std::uint64_t bytes);  // 0 restores the default

// Throws InputError(path, "<what> needs N MiB, over the limit of M MiB (raise it with --max-mib)")
// when bytes > max_array_bytes().
void check_array_bytes(std::uint64_t bytes, const std::string& path, const std::string& what);

// "1.5 MiB", "3.0 GiB", "512 bytes": sizes in messages.
std::string human_bytes(std::uint64_t bytes);

}  // namespace attnviz
