// The three Highway run-time functions the attention kernels' dynamic dispatch calls, forwarded to
// libhwy.so.1 loaded on first use instead of at start-up. Debian ships Highway only as a shared
// library, and its static initializer measures the timer resolution (~3 ms of CPU in every process,
// ~8% of an `attnviz render` that never runs a kernel). The build compiles against Highway's
// headers but does not link the library (CMakeLists.txt).
#include <hwy/targets.h>

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace {

struct Hwy {
  hwy::ChosenTarget& (*get_chosen_target)() = nullptr;
  int64_t (*supported_targets)() = nullptr;
  void (*disable_targets)(int64_t) = nullptr;
};

void* symbol(void* lib, const char* name) {
  void* f = dlsym(lib, name);
  if (!f) {
    std::fprintf(stderr, "attnviz: libhwy.so.1 has no %s: %s\n", name, dlerror());
    std::abort();
  }
  return f;
}

const Hwy& hwy_library() {
  static Hwy h;
  static std::once_flag once;
  std::call_once(once, [] {
    void* lib = dlopen("libhwy.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      // Kernels run inside OpenMP regions, where an exception cannot reach main: say why and stop.
      std::fprintf(stderr, "attnviz: cannot load Highway (libhwy.so.1, Debian package libhwy1): %s\n", dlerror());
      std::abort();
    }
    h.get_chosen_target = reinterpret_cast<hwy::ChosenTarget& (*)()>(symbol(lib, "_ZN3hwy15GetChosenTargetEv"));
    h.supported_targets = reinterpret_cast<int64_t (*)()>(symbol(lib, "_ZN3hwy16SupportedTargetsEv"));
    h.disable_targets = reinterpret_cast<void (*)(int64_t)>(symbol(lib, "_ZN3hwy14DisableTargetsEl"));
  });
  return h;
}

}  // namespace

namespace hwy {

ChosenTarget& GetChosenTarget() { return hwy_library().get_chosen_target(); }
int64_t SupportedTargets() { return hwy_library().supported_targets(); }
void DisableTargets(int64_t disabled_targets) { hwy_library().disable_targets(disabled_targets); }

}  // namespace hwy
