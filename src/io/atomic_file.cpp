// Atomic writes (temp file + rename) and whole-file reads with InputError on failure.
#include <attnviz/io/atomic_file.hpp>
#include <attnviz/error.hpp>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <unistd.h>

namespace attnviz {

std::string at_offset(std::uint64_t offset, const std::string& expected, const std::string& found) {
  return "at byte " + std::to_string(offset) + ": expected " + expected + ", found " + found;
}

void write_atomically(const std::filesystem::path& path,
                      const std::function<void(const std::filesystem::path& tmp)>& write) {
  namespace fs = std::filesystem;
  static std::atomic<int> counter{0};
  fs::path dir = path.parent_path();
  if (!dir.empty() && !fs::is_directory(dir)) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw InputError(path.string(), "cannot create folder " + dir.string() + ": " + ec.message());
  }
  // The temp name keeps the extension so libraries that look at it (none here) behave alike.
  fs::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  try {
    write(tmp);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw InputError(path.string(), "cannot write: " + ec.message());
  }
}

void write_file_atomically(const std::filesystem::path& path, std::string_view bytes) {
  write_atomically(path, [&](const std::filesystem::path& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw InputError(path.string(), std::string("cannot open for writing: ") + std::strerror(errno));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) throw InputError(path.string(), "write failed (disk full?)");
  });
}

std::string read_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw InputError(path.string(), "is a folder, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path.string(), std::string("cannot open: ") + std::strerror(errno));
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  if (size < 0) throw InputError(path.string(), "cannot determine file size");
  in.seekg(0, std::ios::beg);
  std::string bytes(static_cast<size_t>(size), '\0');
  in.read(bytes.data(), size);
  if (in.gcount() != size) throw InputError(path.string(), "short read");
  return bytes;
}

}  // namespace attnviz
