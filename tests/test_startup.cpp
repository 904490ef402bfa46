// Start-up cost of a process (issue 15): OpenBLAS is loaded on the first matrix product, not when the
// program starts, and only with OpenBLAS's own threads off; the CLI does not load the shared libraries
// that are linked from static archives or loaded lazily.
#include <doctest/doctest.h>

#include <attnviz/engine/ops.hpp>

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "test_util.hpp"

using namespace attnviz;

namespace {

int thread_count() {
  int n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

bool loaded(const char* soname) {
  void* h = dlopen(soname, RTLD_LAZY | RTLD_NOLOAD);
  if (h) dlclose(h);
  return h != nullptr;
}

// The shared libraries `attnviz` would load, as ld.so lists them (what ldd prints).
std::string needed_libraries() {
  const auto [code, out] = test::run_shell(std::string("LD_TRACE_LOADED_OBJECTS=1 '") + ATTNVIZ_EXE + "' 2>&1");
  REQUIRE(code == 0);
  return out;
}

}  // namespace

#ifdef ATTNVIZ_USE_OPENBLAS
TEST_CASE("OpenBLAS is loaded by the first product, single-threaded, and leaves the environment as it was") {
  REQUIRE_FALSE(loaded("libopenblas.so.0"));  // nothing of this test binary multiplied yet
  setenv("OPENBLAS_NUM_THREADS", "3", 1);
  const int threads_before = thread_count();

  Mat a(64, 48), b(48, 40), c;
  for (Eigen::Index i = 0; i < a.size(); ++i) a.data()[i] = static_cast<float>((i * 7) % 13) - 6.0f;
  for (Eigen::Index i = 0; i < b.size(); ++i) b.data()[i] = static_cast<float>((i * 5) % 11) - 5.0f;
  nn::matmul(a, b, c);  // 64*48*40 multiply-adds: one thread, Eigen hands it to sgemm_

  CHECK(loaded("libopenblas.so.0"));
  CHECK(thread_count() == threads_before);  // OpenBLAS started no worker threads
  REQUIRE(std::getenv("OPENBLAS_NUM_THREADS"));
  CHECK(std::string(std::getenv("OPENBLAS_NUM_THREADS")) == "3");
  unsetenv("OPENBLAS_NUM_THREADS");
  // Small integers: the float products are exact.
  for (Eigen::Index i = 0; i < c.rows(); ++i)
    for (Eigen::Index j = 0; j < c.cols(); ++j) {
      float want = 0;
      for (Eigen::Index k = 0; k < a.cols(); ++k) want += a(i, k) * b(k, j);
      REQUIRE(c(i, j) == want);
    }
  CHECK(nn::gemm_backend().find("OpenBLAS") == 0);
}
#endif

TEST_CASE("the attnviz executable loads neither OpenBLAS nor the libraries linked from static archives") {
  const std::string libs = needed_libraries();
  INFO(libs);
  REQUIRE(libs.find("libc.so.6") != std::string::npos);  // the listing worked
  for (const char* name : {"libopenblas", "libgfortran", "libquadmath", "libhwy", "libstb", "libutf8proc",
                           "libgif", "libwebp"})
    CHECK_MESSAGE(libs.find(name) == std::string::npos, name);
}
