// Row-split OpenMP GEMMs over Eigen (which itself runs single-threaded) and row softmax.
#include <attnviz/engine/ops.hpp>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#ifdef ATTNVIZ_USE_OPENBLAS
// Defined in blas_lazy.cpp, which loads OpenBLAS on first use; it also makes OpenBLAS single-threaded:
// the engine splits products over its own OpenMP threads (nn::threads()), so thread counts (and the
// results) stay the engine's and OpenBLAS's pthreads never compete with OpenMP's.
extern "C" {
char* openblas_get_config(void);
char* openblas_get_corename(void);
}
#endif

namespace attnviz::nn {

namespace {
int g_threads = 0;


// Threads worth using for a product of m*n*k multiply-adds: below ~2 MFLOP the fork/join
// (a few microseconds) costs more than it saves.
int gemm_threads(Eigen::Index m, Eigen::Index n, Eigen::Index k, Eigen::Index split) {
  int t = threads();
  double work = static_cast<double>(m) * n * k;
  if (work < 1.0e6) return 1;
  return static_cast<int>(std::max<Eigen::Index>(1, std::min<Eigen::Index>(t, split / 8)));
}

// Calls block(begin, count) on each of t contiguous parts of [0, n), one part per thread. The split
// depends only on n and t, so every run with the same threads computes the same numbers.
template <class Block>
void for_parts(Eigen::Index n, int t, const Block& block) {
  if (t <= 1) {
    block(Eigen::Index(0), n);
    return;
  }
#pragma omp parallel for num_threads(t) schedule(static)
  for (int i = 0; i < t; ++i) {
    const Eigen::Index begin = n * i / t, end = n * (i + 1) / t;
    if (end > begin) block(begin, end - begin);
  }
}
}  // namespace

void set_threads(int n) { g_threads = std::max(0, n); }
int threads() { return g_threads > 0 ? g_threads : omp_get_max_threads(); }

int thread_count(int requested, Workload w) {
  if (requested > 0) return requested;
  return w == Workload::SmallMatrices ? 1 : omp_get_max_threads();
}

void use_threads(int requested, Workload w) {
  const int n = thread_count(requested, w);
  omp_set_num_threads(n);
  set_threads(n);
}

std::string gemm_backend() {
#ifdef ATTNVIZ_USE_OPENBLAS
  return std::string("OpenBLAS (") + openblas_get_config() + "; kernels: " + openblas_get_corename() + ")";
#elif defined(__AVX512F__)
  return "Eigen (AVX-512, compiled in)";
#elif defined(__AVX2__)
  return "Eigen (AVX2, compiled in)";
#else
  return "Eigen (SSE2, compiled in)";
#endif
}

#ifdef ATTNVIZ_USE_OPENBLAS
namespace {
// Row-major sgemm with beta = 0 (overwrite) or 1 (accumulate): Eigen's `c.noalias() = a * b`
// under EIGEN_USE_BLAS zero-fills c and then calls sgemm with beta = 1 (a memset of every product).
// Through the Fortran sgemm_ that Eigen calls too: the row-major C = op(A) op(B) is the
// column-major C^T = op(B)^T op(A)^T, so the operands swap places.
void sgemm(bool ta, bool tb, Eigen::Index m, Eigen::Index n, Eigen::Index k, const float* a, Eigen::Index lda,
           const float* b, Eigen::Index ldb, float* c, Eigen::Index ldc, bool accumulate) {
  const char opa = ta ? 'T' : 'N', opb = tb ? 'T' : 'N';
  const int M = static_cast<int>(m), N = static_cast<int>(n), K = static_cast<int>(k);
  const int LDA = static_cast<int>(lda), LDB = static_cast<int>(ldb), LDC = static_cast<int>(ldc);
  const float one = 1.f, beta = accumulate ? 1.f : 0.f;
  sgemm_(&opb, &opa, &N, &M, &K, &one, b, &LDB, a, &LDA, &beta, c, &LDC);
}
}  // namespace
#endif

namespace {
// Inside another parallel region (the trainer's batch slices) nested regions run on one thread:
// one product then beats the same product cut into parts run one after the other.
int outer_threads(Eigen::Index m, Eigen::Index n, Eigen::Index k, Eigen::Index split) {
  return omp_in_parallel() ? 1 : gemm_threads(m, n, k, split);
}
}  // namespace

void matmul(const Mat& a, const Mat& b, Mat& c, bool accumulate) {
  // a: [M, K], b: [K, N], c: [M, N]
  const Eigen::Index M = a.rows(), N = b.cols(), K = a.cols();
  if (!accumulate) c.resize(M, N);
  int t = outer_threads(M, N, K, M);
#ifdef ATTNVIZ_USE_OPENBLAS
  if (M > 0 && N > 0 && K > 0) {
    for_parts(M, t, [&](Eigen::Index r0, Eigen::Index rows) {
      sgemm(false, false, rows, N, K, a.data() + r0 * K, K, b.data(), N, c.data() + r0 * N, N, accumulate);
    });
    return;
  }
#endif
  if (t == 1) {
    if (accumulate) c.noalias() += a * b;
    else c.noalias() = a * b;
    return;
  }
  for_parts(M, t, [&](Eigen::Index r0, Eigen::Index rows) {
    if (accumulate) c.middleRows(r0, rows).noalias() += a.middleRows(r0, rows) * b;
    else c.middleRows(r0, rows).noalias() = a.middleRows(r0, rows) * b;
  });
}

void matmul_tn(const Mat& a, const Mat& b, Mat& c, bool accumulate) {
  // a: [K, M], b: [K, N], c: [M, N]; split over the columns of c so no thread sums into another's.
  const Eigen::Index M = a.cols(), N = b.cols(), K = a.rows();
  if (!accumulate) c.resize(M, N);
  int t = outer_threads(M, N, K, N);
#ifdef ATTNVIZ_USE_OPENBLAS
  if (M > 0 && N > 0 && K > 0) {
    for_parts(N, t, [&](Eigen::Index c0, Eigen::Index cols) {
      sgemm(true, false, M, cols, K, a.data(), M, b.data() + c0, N, c.data() + c0, N, accumulate);
    });
    return;
  }
#endif
  if (t == 1) {
    if (accumulate) c.noalias() += a.transpose() * b;
    else c.noalias() = a.transpose() * b;
    return;
  }
  for_parts(N, t, [&](Eigen::Index c0, Eigen::Index cols) {
    if (accumulate) c.middleCols(c0, cols).noalias() += a.transpose() * b.middleCols(c0, cols);
    else c.middleCols(c0, cols).noalias() = a.transpose() * b.middleCols(c0, cols);
  });
}

void matmul_nt(const Mat& a, const Mat& b, Mat& c, bool accumulate) {
  // a: [M, K], b: [N, K], c: [M, N]
  const Eigen::Index M = a.rows(), N = b.rows(), K = a.cols();
  if (!accumulate) c.resize(M, N);
  int t = outer_threads(M, N, K, M);
#ifdef ATTNVIZ_USE_OPENBLAS
  if (M > 0 && N > 0 && K > 0) {
    for_parts(M, t, [&](Eigen::Index r0, Eigen::Index rows) {
      sgemm(false, true, rows, N, K, a.data() + r0 * K, K, b.data(), K, c.data() + r0 * N, N, accumulate);
    });
    return;
  }
#endif
  if (t == 1) {
    if (accumulate) c.noalias() += a * b.transpose();
    else c.noalias() = a * b.transpose();
    return;
  }
  for_parts(M, t, [&](Eigen::Index r0, Eigen::Index rows) {
    if (accumulate) c.middleRows(r0, rows).noalias() += a.middleRows(r0, rows) * b.transpose();
    else c.middleRows(r0, rows).noalias() = a.middleRows(r0, rows) * b.transpose();
  });
}

void softmax_rows(Mat& x) { softmax_rows(MatMap(x.data(), x.rows(), x.cols())); }

// softmax_rows(MatMap): simd_math.cpp (SIMD exp, run-time ISA dispatch).

Mat log_softmax_rows(const Mat& logits) {
  Mat out = logits;  // [M, N]
  for (Eigen::Index r = 0; r < out.rows(); ++r) {
    float m = out.row(r).maxCoeff();
    float lse = m + std::log((out.row(r).array() - m).exp().sum());
    out.row(r).array() -= lse;
  }
  return out;
}

}  // namespace attnviz::nn
