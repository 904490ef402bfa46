// Safe output (random O_EXCL|O_NOFOLLOW temp file, fsync, rename; "-" = stdout; devices, FIFOs and
// folders refused; mode kept; temp removed on SIGINT/SIGTERM/SIGHUP) and whole-file reads.
#include <attnviz/io/atomic_file.hpp>
#include <attnviz/io/limits.hpp>
#include <attnviz/error.hpp>

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <mutex>
#include <new>

namespace attnviz {

std::string at_offset(std::uint64_t offset, const std::string& expected, const std::string& found) {
  return "at byte " + std::to_string(offset) + ": expected " + expected + ", found " + found;
}

namespace {

namespace fs = std::filesystem;

// Temp files being written, so a signal handler can remove them. Fixed slots of plain char
// arrays: the handler may only call async-signal-safe functions (unlink, sigaction, raise).
constexpr int kSlots = 16;
struct Slot {
  std::atomic<int> used{0};
  char path[PATH_MAX];
};
std::array<Slot, kSlots> g_slots;

extern "C" void remove_temps_and_reraise(int sig) {
  for (auto& s : g_slots)
    if (s.used.load() == 2) ::unlink(s.path);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(sig, &dfl, nullptr);
  ::raise(sig);  // die of the same signal, as the shell expects
}

// Installs the handler for signals that still have their default action (a program with its own
// handlers keeps them). Checked on every write, not once: a forked child or a program that resets
// its handlers gets it again; it is three sigaction calls.
void install_handlers() {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old {};
    if (::sigaction(sig, nullptr, &old) != 0 || old.sa_handler != SIG_DFL || (old.sa_flags & SA_SIGINFO)) continue;
    struct sigaction sa {};
    sa.sa_handler = remove_temps_and_reraise;
    sigemptyset(&sa.sa_mask);
    ::sigaction(sig, &sa, nullptr);
  }
}

// Registers a temp path for removal on a signal (before the file is created, so no signal finds
// the file unregistered); released by clear() or the destructor.
class TempGuard {
 public:
  void set(const std::string& p) {
    clear();
    if (p.size() >= PATH_MAX) return;
    for (auto& s : g_slots) {
      int free_slot = 0;
      if (s.used.compare_exchange_strong(free_slot, 1)) {
        std::memcpy(s.path, p.c_str(), p.size() + 1);
        s.used.store(2);
        slot_ = &s;
        return;
      }
    }
  }
  void clear() {
    if (slot_) slot_->used.store(0);
    slot_ = nullptr;
  }
  TempGuard() = default;
  ~TempGuard() { clear(); }
  TempGuard(const TempGuard&) = delete;
  TempGuard& operator=(const TempGuard&) = delete;

 private:
  Slot* slot_ = nullptr;
};

std::string sys_error(int err) { return std::strerror(err); }

// Writes all of bytes to fd, retrying short writes and EINTR. Returns 0 or an errno value.
int write_all(int fd, std::string_view bytes) {
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, std::min<size_t>(left, size_t{1} << 30));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    p += n;
    left -= static_cast<size_t>(n);
  }
  return 0;
}

const char* kind_of(mode_t m) {
  if (S_ISDIR(m)) return "a folder";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

mode_t current_umask() {
  static const mode_t mask = [] {
    const mode_t m = ::umask(022);  // reading the umask means setting it; put it back at once
    ::umask(m);
    return m;
  }();
  return mask;
}

// 16 random characters from getrandom (falls back to address/time entropy if it is unavailable).
std::string random_suffix() {
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  unsigned char r[16];
  if (::getrandom(r, sizeof r, 0) != static_cast<ssize_t>(sizeof r)) {
    std::uint64_t x = reinterpret_cast<std::uintptr_t>(&r) ^ static_cast<std::uint64_t>(::getpid()) << 32 ^
                      static_cast<std::uint64_t>(::time(nullptr));
    for (auto& c : r) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      c = static_cast<unsigned char>(x);
    }
  }
  std::string s;
  for (unsigned char c : r) s.push_back(alphabet[c % 62]);
  return s;
}

void write_stdout(std::string_view bytes) {
  if (int err = write_all(STDOUT_FILENO, bytes))
    throw InputError("-", "cannot write to standard output: " + sys_error(err));
}

}  // namespace

namespace {

// Resolves the output: the path itself, or a symlink's final target. Throws InputError if what is
// there is not a regular file. `exists`/`st` describe the target when it exists.
fs::path resolve_output(const fs::path& path, bool& exists, struct stat& st) {
  const std::string shown = path.string();
  if (shown.empty()) throw InputError("", "output path is empty");
  fs::path target = path;
  exists = false;
  if (::lstat(path.c_str(), &st) == 0) {
    exists = true;
    if (S_ISLNK(st.st_mode)) {
      char real[PATH_MAX];
      if (!::realpath(path.c_str(), real))
        throw InputError(shown, "is a symlink that does not lead to a file (" + sys_error(errno) +
                                    "); remove it or name another output");
      target = real;
      if (::stat(real, &st) != 0) throw InputError(shown, "cannot stat the symlink's target " + target.string() + ": " + sys_error(errno));
    }
    if (!S_ISREG(st.st_mode))
      throw InputError(shown, std::string("is ") + kind_of(st.st_mode) +
                                  ", not a regular file; name a file" +
                                  (S_ISDIR(st.st_mode) ? " inside it" : ", or use -o - to write to standard output"));
  } else if (errno != ENOENT) {
    throw InputError(shown, "cannot stat the output: " + sys_error(errno));
  }
  return target;
}

}  // namespace

void check_output_path(const fs::path& path) {
  if (path == "-") return;
  bool exists = false;
  struct stat st {};
  resolve_output(path, exists, st);
}

void write_file_atomically(const fs::path& path, std::string_view bytes) {
  const std::string shown = path.string();
  if (shown == "-") return write_stdout(bytes);
  // What is there now decides where the new file goes and which mode it gets.
  bool exists = false;
  struct stat st {};
  const fs::path target = resolve_output(path, exists, st);

  fs::path dir = target.parent_path();
  if (dir.empty()) dir = ".";
  if (!exists) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      fs::create_directories(dir, ec);  // documented: -o creates missing folders, like mkdir -p
      if (ec) throw InputError(shown, "cannot create the folder " + dir.string() + ": " + ec.message());
    }
  }

  // The temp name is unpredictable and O_EXCL|O_NOFOLLOW refuses anything planted at it.
  install_handlers();
  TempGuard guard;
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 64 && fd < 0; ++attempt) {
    tmp = (dir / ("." + target.filename().string() + ".tmp-" + random_suffix())).string();
    guard.set(tmp);
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
      const int err = errno;
      guard.clear();  // not ours: never remove it
      if (err != EEXIST)
        throw InputError(shown, "cannot create a temporary file in " + dir.string() + ": " + sys_error(err));
    }
  }
  if (fd < 0) throw InputError(shown, "cannot create a temporary file in " + dir.string() + ": names keep colliding");

  auto fail = [&](const std::string& what, int err) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw InputError(shown, what + ": " + sys_error(err));
  };
  if (int err = write_all(fd, bytes)) fail("write failed", err);
  // Keep the mode of the file being replaced (and its owner when root can); new files get the
  // usual 0666 minus the umask instead of mkstemp's 0600.
  const mode_t mode = exists ? (st.st_mode & 07777) : (0666 & ~current_umask());
  if (::fchmod(fd, mode) != 0) fail("cannot set the file mode", errno);
  if (exists && ::geteuid() == 0 && (st.st_uid != 0 || st.st_gid != 0)) {
    if (::fchown(fd, st.st_uid, st.st_gid) != 0) fail("cannot keep the file's owner", errno);
  }
  if (::fsync(fd) != 0) fail("fsync failed", errno);
  const int cfd = fd;
  fd = -1;
  if (::close(cfd) != 0) fail("close failed", errno);
  if (::rename(tmp.c_str(), target.c_str()) != 0) fail("cannot replace " + target.string(), errno);
  // Make the rename itself durable; failure here leaves a complete file, so it is not an error.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

std::string read_file(const fs::path& path) {
  const std::string shown = path.string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError(shown, "cannot open: " + sys_error(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw InputError(shown, "cannot stat: " + sys_error(errno));
  if (S_ISDIR(st.st_mode)) throw InputError(shown, "is a folder, not a file");
  std::string bytes;
  const std::uint64_t limit = max_array_bytes();
  try {
    if (S_ISREG(st.st_mode)) bytes.reserve(static_cast<size_t>(st.st_size));
    char buf[1 << 16];
    while (true) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw InputError(shown, "read failed: " + sys_error(errno));
      }
      if (n == 0) break;
      // Regular files are as big as they are; a pipe or device could stream forever.
      if (!S_ISREG(st.st_mode) && bytes.size() + static_cast<size_t>(n) > limit)
        throw InputError(shown, "stream is longer than the memory limit of " + human_bytes(limit) +
                                    " (raise it with --max-mib)");
      bytes.append(buf, static_cast<size_t>(n));
    }
  } catch (const std::bad_alloc&) {
    throw InputError(shown, "the file (" + human_bytes(static_cast<std::uint64_t>(st.st_size)) +
                                ") does not fit in memory");
  }
  return bytes;
}

}  // namespace attnviz
