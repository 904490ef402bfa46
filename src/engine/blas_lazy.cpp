// The seven OpenBLAS functions attnviz calls (Eigen's sgemm_/sgemv_ and, for the float64 products of
// the LM relevance and its tests, dgemm_/dgemv_ under EIGEN_USE_BLAS, and three
// openblas_* queries), forwarded to libopenblas.so.0 loaded on the first call instead of at start-up.
// Linked normally, OpenBLAS (with libgfortran and libquadmath) cost every process ~2.5-3.7 ms of CPU
// before main: loading and relocating ~30 MB of libraries, then a library constructor that starts
// a worker thread per core but one, each spinning on sched_yield before it sleeps. Commands that
// multiply no matrix (every `attnviz render`) now never load it; the first product pays the load once.
#ifdef ATTNVIZ_USE_OPENBLAS

#include <Eigen/Core>  // declares sgemm_/sgemv_ (Eigen/src/misc/blas.h): the definitions below must match

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

extern "C" {
void openblas_set_num_threads(int);
char* openblas_get_config(void);
char* openblas_get_corename(void);
}

namespace {

struct Blas {
  decltype(&sgemm_) sgemm = nullptr;
  decltype(&sgemv_) sgemv = nullptr;
  decltype(&dgemm_) dgemm = nullptr;
  decltype(&dgemv_) dgemv = nullptr;
  decltype(&openblas_set_num_threads) set_num_threads = nullptr;
  decltype(&openblas_get_config) get_config = nullptr;
  decltype(&openblas_get_corename) get_corename = nullptr;
};

template <class F>
F symbol(void* lib, const char* name) {
  void* f = dlsym(lib, name);
  if (!f) {
    std::fprintf(stderr, "attnviz: libopenblas.so.0 has no %s: %s\n", name, dlerror());
    std::abort();
  }
  return reinterpret_cast<F>(f);
}

const Blas& blas() {
  static Blas b;
  static std::once_flag once;
  std::call_once(once, [] {
    // OpenBLAS runs single-threaded (the engine splits products over its own OpenMP threads, see
    // ops.cpp). With OPENBLAS_NUM_THREADS=1 in the environment while it loads, its constructor starts
    // no worker threads at all; the caller's value is put back afterwards, so child processes see
    // the environment they were given. (The first product may run inside an OpenMP region: the
    // other threads wait in call_once meanwhile and read no environment.)
    const char* old = std::getenv("OPENBLAS_NUM_THREADS");
    const std::string saved = old ? old : "";
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    void* lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (old) setenv("OPENBLAS_NUM_THREADS", saved.c_str(), 1);
    else unsetenv("OPENBLAS_NUM_THREADS");
    if (!lib) {
      // Products run inside OpenMP regions, where an exception cannot reach main: say why and stop.
      std::fprintf(stderr, "attnviz: cannot load OpenBLAS (libopenblas.so.0, Debian package libopenblas0): %s\n",
                   dlerror());
      std::abort();
    }
    b.sgemm = symbol<decltype(&sgemm_)>(lib, "sgemm_");
    b.sgemv = symbol<decltype(&sgemv_)>(lib, "sgemv_");
    b.dgemm = symbol<decltype(&dgemm_)>(lib, "dgemm_");
    b.dgemv = symbol<decltype(&dgemv_)>(lib, "dgemv_");
    b.set_num_threads = symbol<decltype(&openblas_set_num_threads)>(lib, "openblas_set_num_threads");
    b.get_config = symbol<decltype(&openblas_get_config)>(lib, "openblas_get_config");
    b.get_corename = symbol<decltype(&openblas_get_corename)>(lib, "openblas_get_corename");
    // Builds that do not read the variable (the OpenMP one reads OMP_NUM_THREADS) still run one
    // thread, and any workers their constructor started are joined (OpenBLAS's fork handler);
    // looked up at run time since the serial and OpenMP builds may not have it.
    b.set_num_threads(1);
    if (auto* shutdown = reinterpret_cast<int (*)()>(dlsym(lib, "blas_thread_shutdown_"))) shutdown();
  });
  return b;
}

}  // namespace

extern "C" {

int sgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k, const float* alpha,
           const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
           const int* ldc) {
  return blas().sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

int sgemv_(const char* t, const int* m, const int* n, const float* alpha, const float* a, const int* lda,
           const float* x, const int* incx, const float* beta, float* y, const int* incy) {
  return blas().sgemv(t, m, n, alpha, a, lda, x, incx, beta, y, incy);
}

int dgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k, const double* alpha,
           const double* a, const int* lda, const double* b, const int* ldb, const double* beta, double* c,
           const int* ldc) {
  return blas().dgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

int dgemv_(const char* t, const int* m, const int* n, const double* alpha, const double* a, const int* lda,
           const double* x, const int* incx, const double* beta, double* y, const int* incy) {
  return blas().dgemv(t, m, n, alpha, a, lda, x, incx, beta, y, incy);
}

void openblas_set_num_threads(int n) { blas().set_num_threads(n); }
char* openblas_get_config(void) { return blas().get_config(); }
char* openblas_get_corename(void) { return blas().get_corename(); }

}  // extern "C"

#endif  // ATTNVIZ_USE_OPENBLAS
