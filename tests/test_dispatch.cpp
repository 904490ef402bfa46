// Run-time ISA dispatch of the attention kernels: every path this CPU has (AVX-512, AVX2, SSE4,
// portable) against a float64 reference, forward and backward, bitwise determinism per path,
// ATTNVIZ_ISA honoured (CTest runs this file again with it set to avx2 and portable).
#include <doctest/doctest.h>

#include <attnviz/engine/attention.hpp>
#include <attnviz/error.hpp>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "test_engine_util.hpp"

using namespace attnviz;
using namespace attnviz::nn;
using namespace attnviz::test;

namespace {

struct Problem {
  int B, H, Nq, Nk, Dh;
  bool causal;
  std::vector<int> lens;
  Mat q, k, v, dout;
};

Problem make(int B, int H, int Nq, int Nk, int Dh, bool causal, bool lengths, uint64_t seed) {
  Rng rng(seed);
  Problem p{B, H, Nq, Nk, Dh, causal, {}, {}, {}, {}, {}};
  p.q = test::randn(B * Nq, H * Dh, rng);
  p.k = test::randn(B * Nk, H * Dh, rng);
  p.v = test::randn(B * Nk, H * Dh, rng);
  p.dout = test::randn(B * Nq, H * Dh, rng);
  if (lengths)
    for (int b = 0; b < B; ++b) p.lens.push_back(b == 0 ? Nk : 1 + static_cast<int>(rng.below(Nk)));
  return p;
}

// Float64 forward + backward of softmax(scale q k^T) v for every (b, h), loops only.
void reference(const Problem& p, float scale, Mat& out, Mat& dq, Mat& dk, Mat& dv) {
  const int W = p.H * p.Dh;
  out = Mat::Zero(p.B * p.Nq, W);
  dq = Mat::Zero(p.B * p.Nq, W);
  dk = Mat::Zero(p.B * p.Nk, W);
  dv = Mat::Zero(p.B * p.Nk, W);
  for (int b = 0; b < p.B; ++b)
    for (int h = 0; h < p.H; ++h)
      for (int i = 0; i < p.Nq; ++i) {
        int vis = p.lens.empty() ? p.Nk : p.lens[b];
        if (p.causal) vis = std::min(vis, i + 1);
        if (vis <= 0) continue;
        const int qi = b * p.Nq + i;
        std::vector<double> P(vis), dP(vis);
        double m = -1e300, sum = 0;
        for (int j = 0; j < vis; ++j) {
          double s = 0;
          for (int c = 0; c < p.Dh; ++c) s += double(p.q(qi, h * p.Dh + c)) * p.k(b * p.Nk + j, h * p.Dh + c);
          P[j] = s * scale;
          m = std::max(m, P[j]);
        }
        for (int j = 0; j < vis; ++j) sum += (P[j] = std::exp(P[j] - m));
        for (double& x : P) x /= sum;
        double Di = 0;
        for (int j = 0; j < vis; ++j) {
          double o = 0;
          for (int c = 0; c < p.Dh; ++c) {
            out(qi, h * p.Dh + c) += static_cast<float>(P[j] * p.v(b * p.Nk + j, h * p.Dh + c));
            o += double(p.dout(qi, h * p.Dh + c)) * p.v(b * p.Nk + j, h * p.Dh + c);
          }
          dP[j] = o;
          Di += P[j] * o;
        }
        for (int j = 0; j < vis; ++j) {
          const double ds = P[j] * (dP[j] - Di);
          for (int c = 0; c < p.Dh; ++c) {
            dv(b * p.Nk + j, h * p.Dh + c) += static_cast<float>(P[j] * p.dout(qi, h * p.Dh + c));
            dq(qi, h * p.Dh + c) += static_cast<float>(scale * ds * p.k(b * p.Nk + j, h * p.Dh + c));
            dk(b * p.Nk + j, h * p.Dh + c) += static_cast<float>(scale * ds * p.q(qi, h * p.Dh + c));
          }
        }
      }
}

float rel_err(const Mat& a, const Mat& b) {
  return (a - b).cwiseAbs().maxCoeff() / std::max(1.f, b.cwiseAbs().maxCoeff());
}

struct Result {
  Mat out, dq, dk, dv;
  std::vector<float> w;
};

Result run(const Problem& p, float scale, int threads) {
  const int W = p.H * p.Dh;
  KernelShape s{p.B, p.H, p.Nq, p.Nk, p.Dh};
  KernelOptions o;
  o.scale = scale;
  o.causal = p.causal;
  o.key_lengths = p.lens.empty() ? nullptr : p.lens.data();
  o.threads = threads;
  Result r{Mat(p.B * p.Nq, W), Mat(p.B * p.Nq, W), Mat(p.B * p.Nk, W), Mat(p.B * p.Nk, W), {}};
  std::vector<float> lse(static_cast<size_t>(p.B) * p.H * p.Nq);
  r.w.resize(static_cast<size_t>(p.B) * p.H * p.Nq * p.Nk);
  o.lse = lse.data();
  o.weights = r.w.data();
  attention_blocked(p.q.data(), p.k.data(), p.v.data(), r.out.data(), s, o);
  attention_backward(p.q.data(), p.k.data(), p.v.data(), r.out.data(), p.dout.data(), lse.data(), r.dq.data(),
                     r.dk.data(), r.dv.data(), s, o);
  return r;
}

bool same(const Mat& a, const Mat& b) { return (a.array() == b.array()).all(); }

}  // namespace

TEST_CASE("unknown ISA names are usage errors") {
  IsaGuard guard;
  CHECK_THROWS_AS(set_kernel_isa("avx1024"), UsageError);
  CHECK_THROWS_AS(set_kernel_isa(""), UsageError);
}

TEST_CASE("ATTNVIZ_ISA picks the path; without it the widest the CPU has") {
  const char* env = std::getenv("ATTNVIZ_ISA");
  const char* e = env && *env ? env : nullptr;   // set but empty = unset
  const std::string want = e ? e : (cpu_has("avx512") ? "avx512" : cpu_has("avx2") ? "avx2" : "sse4");
  MESSAGE("kernel ISA: " << kernel_isa() << " (ATTNVIZ_ISA=" << std::string(e ? e : "unset") << ")");
  if (cpu_has(want) && want != "best") CHECK(kernel_isa() == want);
}

TEST_CASE("every ISA path matches the float64 reference, forward and backward, and is deterministic") {
  IsaGuard guard;
  // Shapes that cross tile edges (BQ 96, BK 64), odd head dims (padding to the vector width),
  // causal masks and key lengths (a batch row with few keys).
  const Problem problems[] = {
      make(2, 2, 150, 131, 64, false, true, 1),
      make(1, 3, 97, 97, 20, true, false, 2),
      make(3, 1, 5, 200, 7, false, true, 3),
      make(1, 2, 200, 70, 32, true, true, 4),
  };
  for (const char* isa : {"avx512", "avx2", "sse4", "portable"}) {
    if (!cpu_has(isa)) {
      MESSAGE("skipping " << isa << ": this CPU lacks it");
      continue;
    }
    set_kernel_isa(isa);
    CHECK(kernel_isa() == isa);
    for (const Problem& p : problems) {
      INFO("isa=" << isa << " B=" << p.B << " H=" << p.H << " Nq=" << p.Nq << " Nk=" << p.Nk << " Dh=" << p.Dh
                  << " causal=" << p.causal);
      const float scale = 1.f / std::sqrt(static_cast<float>(p.Dh));
      Mat out, dq, dk, dv;
      reference(p, scale, out, dq, dk, dv);
      const Result a = run(p, scale, 2);
      CHECK(rel_err(a.out, out) <= 2e-5f);
      CHECK(rel_err(a.dq, dq) <= 2e-4f);
      CHECK(rel_err(a.dk, dk) <= 2e-4f);
      CHECK(rel_err(a.dv, dv) <= 2e-4f);
      // Same inputs, same thread count: bitwise the same; one thread too (no shared accumulators).
      for (int threads : {2, 1}) {
        const Result b = run(p, scale, threads);
        CHECK(same(a.out, b.out));
        CHECK(same(a.dq, b.dq));
        CHECK(same(a.dk, b.dk));
        CHECK(same(a.dv, b.dv));
        CHECK(a.w == b.w);
      }
    }
  }
}
