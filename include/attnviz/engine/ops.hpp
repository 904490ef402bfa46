// Dense building blocks shared by the layers: OpenMP row-split GEMMs (Eigen runs single-threaded
// because EIGEN_DONT_PARALLELIZE is set) and the engine's thread-count setting.
#pragma once
#include <attnviz/tensor.hpp>

#include <string>

namespace attnviz::nn {

// Threads the engine uses for its OpenMP loops (0 = OpenMP default, i.e. all cores).
// Results are bitwise identical for the same thread count.
void set_threads(int n);
int threads();
// The one thread-count policy (the CLI's --threads goes through it). requested > 0: that many.
// requested 0: OpenMP's default (all cores, or OMP_NUM_THREADS), except for work made of small
// matrices (the translators multiply [32, 192] x [192, 384]): there fork/join barriers cost more
// than they save and spinning threads slow a loaded machine down, so 1.
enum class Workload { General, SmallMatrices };
int thread_count(int requested, Workload w = Workload::General);
// Sets OpenMP's thread count and threads() to thread_count(requested, w).
void use_threads(int requested, Workload w = Workload::General);
// What computes the matrix products: "OpenBLAS (<config>; kernels: <core>)" when built with
// ATTNVIZ_BLAS (OpenBLAS picks its kernels for the CPU at run time), else Eigen and its compiled-in ISA.
std::string gemm_backend();

// c = a * b (+ c when accumulate). a: [M, K], b: [K, N], c: [M, N] (resized unless accumulate).
// Large products are split by rows of `a` over threads; small ones run on one thread.
void matmul(const Mat& a, const Mat& b, Mat& c, bool accumulate = false);
// c = a^T * b (+ c). a: [K, M], b: [K, N], c: [M, N]. Split over columns of c (no reduction
// across threads, so deterministic). Used for weight gradients dW = x^T dy.
void matmul_tn(const Mat& a, const Mat& b, Mat& c, bool accumulate = false);
// c = a * b^T (+ c). a: [M, K], b: [N, K], c: [M, N]. Used for input gradients dx = dy W^T.
void matmul_nt(const Mat& a, const Mat& b, Mat& c, bool accumulate = false);

// Row-wise softmax in place, x: [M, N]; rows that are all -inf become all zeros (never NaN).
void softmax_rows(Mat& x);
void softmax_rows(MatMap x);
// Exact-erf GELU element-wise over n floats: y = x Phi(x) and, unless dydx is null, its derivative
// Phi(x) + x phi(x) (Phi, phi: the standard normal's CDF and density). y may be x (in place).
// SIMD for the CPU (run-time dispatch); |y - exact| <= 1e-6 max(1, |x|).
void gelu_erf(const float* x, float* y, float* dydx, Eigen::Index n);
// Row-wise log-softmax (log-sum-exp with the row max subtracted), logits: [M, N] -> [M, N].
Mat log_softmax_rows(const Mat& logits);

}  // namespace attnviz::nn
