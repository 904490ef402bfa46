// The --max-mib limit: default from physical memory and RLIMIT_AS, checked by every loader.
#include <attnviz/error.hpp>
#include <attnviz/io/limits.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>

namespace attnviz {

namespace {
std::atomic<std::uint64_t> g_max{0};  // 0 = default
}

std::uint64_t default_max_array_bytes() {
  std::uint64_t mem = std::uint64_t{8} << 30;  // if the system does not say
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) mem = static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page);
  rlimit rl{};
  if (::getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    mem = std::min<std::uint64_t>(mem, static_cast<std::uint64_t>(rl.rlim_cur));
  return std::max<std::uint64_t>(mem / 8, std::uint64_t{1} << 20);
}

std::uint64_t max_array_bytes() {
  const std::uint64_t m = g_max.load(std::memory_order_relaxed);
  return m ? m : default_max_array_bytes();
}

void set_max_array_bytes(std::uint64_t bytes) { g_max.store(bytes, std::memory_order_relaxed); }

std::string human_bytes(std::uint64_t b) {
  char buf[64];
  if (b < 1024) {
    std::snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(b));
  } else if (b < (std::uint64_t{1} << 30)) {
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1 << 20));
  } else if (b < (std::uint64_t{1} << 50)) {
    std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(b) / (std::uint64_t{1} << 30));
  } else {
    std::snprintf(buf, sizeof buf, "%.3g bytes", static_cast<double>(b));
  }
  return buf;
}

void check_array_bytes(std::uint64_t bytes, const std::string& path, const std::string& what) {
  const std::uint64_t max = max_array_bytes();
  if (bytes > max)
    throw InputError(path, what + " needs " + human_bytes(bytes) + ", over the memory limit of " +
                               human_bytes(max) + " (raise it with --max-mib if the machine has the memory)");
}

}  // namespace attnviz
