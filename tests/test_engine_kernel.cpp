// Attention kernel: known answers, blocked vs naive on awkward shapes, masks, backward gradients.
#include <doctest/doctest.h>

#include <attnviz/engine/attention.hpp>
#include "gradcheck.hpp"
#include <attnviz/engine/optim.hpp>

#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "test_engine_util.hpp"
#include "test_util.hpp"

using namespace attnviz;
using namespace attnviz::nn;

TEST_CASE("3x3 attention worked out on paper") {
  // Dh = 1, dot score: w_ij ~ exp(q_i k_j). k = (0, 1, 2), v = (0, 1, 2).
  // q0 = ln 2: weights (1, 2, 4)/7, out 10/7; q1 = 0: uniform, out 1; q2 = ln 3: (1, 3, 9)/13, out 21/13.
  float q[3] = {std::log(2.f), 0.f, std::log(3.f)}, k[3] = {0, 1, 2}, v[3] = {0, 1, 2};
  KernelShape s{1, 1, 3, 3, 1};
  for (bool blocked : {true, false}) {
    float out[3], w[9];
    KernelOptions o;
    o.weights = w;
    (blocked ? attention_blocked : attention_naive)(q, k, v, out, s, o);
    CHECK(out[0] == doctest::Approx(10.0 / 7).epsilon(1e-6));
    CHECK(out[1] == doctest::Approx(1.0).epsilon(1e-6));
    CHECK(out[2] == doctest::Approx(21.0 / 13).epsilon(1e-6));
    const double expect[9] = {1 / 7., 2 / 7., 4 / 7., 1 / 3., 1 / 3., 1 / 3., 1 / 13., 3 / 13., 9 / 13.};
    for (int i = 0; i < 9; ++i) CHECK(w[i] == doctest::Approx(expect[i]).epsilon(1e-6));
  }
}

namespace {
struct Case {
  int B, H, Nq, Nk, Dh;
  float magnitude;
  bool causal;
  bool lengths;
};

void compare(const Case& c, int q_tile = 0, int k_tile = 0) {
  Rng rng(static_cast<uint64_t>(c.Nq * 131 + c.Nk * 7 + c.Dh));
  const int W = c.H * c.Dh;
  Mat q = test::randn(c.B * c.Nq, W, rng, c.magnitude), k = test::randn(c.B * c.Nk, W, rng, c.magnitude),
      v = test::randn(c.B * c.Nk, W, rng);
  // Large magnitudes: integer-valued q and k with the dot score, so the logits (in the hundreds
  // and thousands, far past exp's float range) are exact in float32 and the softmax itself is tested.
  const bool large = c.magnitude > 5;
  if (large) {
    q = q.array().round();
    k = k.array().round();
  }
  std::vector<int> lens(c.B);
  for (int b = 0; b < c.B; ++b) lens[b] = b == 0 ? c.Nk : (b == 1 ? 0 : 1 + rng.below(c.Nk));
  KernelShape s{c.B, c.H, c.Nq, c.Nk, c.Dh};
  KernelOptions o;
  o.scale = large ? 1.f : 1.f / std::sqrt(static_cast<float>(c.Dh));
  o.causal = c.causal;
  o.key_lengths = c.lengths ? lens.data() : nullptr;
  o.q_tile = q_tile;
  o.k_tile = k_tile;
  Mat out_b(c.B * c.Nq, W), out_n(c.B * c.Nq, W);
  std::vector<float> w_b(static_cast<size_t>(c.B) * c.H * c.Nq * c.Nk), w_n(w_b.size()), lse_b(c.B * c.H * c.Nq),
      lse_n(lse_b.size());
  KernelOptions ob = o, on = o;
  ob.weights = w_b.data();
  ob.lse = lse_b.data();
  on.weights = w_n.data();
  on.lse = lse_n.data();
  attention_blocked(q.data(), k.data(), v.data(), out_b.data(), s, ob);
  attention_naive(q.data(), k.data(), v.data(), out_n.data(), s, on);
  // Without weights the output must be bitwise the same as with them (recording changes nothing).
  Mat out_plain(c.B * c.Nq, W);
  attention_blocked(q.data(), k.data(), v.data(), out_plain.data(), s, o);
  CHECK((out_plain.array() == out_b.array()).all());

  const float scale = std::max(1.f, out_n.cwiseAbs().maxCoeff());
  const float err = (out_b - out_n).cwiseAbs().maxCoeff() / scale;
  INFO("B=" << c.B << " H=" << c.H << " Nq=" << c.Nq << " Nk=" << c.Nk << " Dh=" << c.Dh << " mag=" << c.magnitude
            << " causal=" << c.causal << " lengths=" << c.lengths << " tiles=" << q_tile << "x" << k_tile);
  CHECK(out_b.allFinite());
  CHECK(err <= 1e-5f);
  float werr = 0;
  for (size_t i = 0; i < w_b.size(); ++i) werr = std::max(werr, std::abs(w_b[i] - w_n[i]));
  CHECK(werr <= 1e-5f);
  for (size_t i = 0; i < lse_b.size(); ++i) {
    if (std::isinf(lse_n[i])) CHECK(std::isinf(lse_b[i]));
    else CHECK(std::abs(lse_b[i] - lse_n[i]) <= 1e-5f * std::max(1.f, std::abs(lse_n[i])));
  }
  // Rows sum to 1, or are all zero when the query sees no key.
  for (int b = 0; b < c.B; ++b)
    for (int h = 0; h < c.H; ++h)
      for (int i = 0; i < c.Nq; ++i) {
        const float* w = w_b.data() + ((static_cast<size_t>(b) * c.H + h) * c.Nq + i) * c.Nk;
        double sum = 0;
        for (int j = 0; j < c.Nk; ++j) sum += w[j];
        int vis = c.lengths ? lens[b] : c.Nk;
        if (c.causal) vis = std::min(vis, i + 1);
        if (vis == 0) {
          CHECK(sum == 0.0);
          CHECK(out_b.row(static_cast<Eigen::Index>(b) * c.Nq + i).segment(h * c.Dh, c.Dh).isZero(0));
        } else {
          CHECK(sum == doctest::Approx(1.0).epsilon(1e-5));
        }
      }
}
}  // namespace

TEST_CASE("blocked kernel matches the naive reference on awkward shapes") {
  const Case cases[] = {
      {1, 1, 1, 1, 64, 1, false, false},    {2, 3, 1, 300, 64, 1, false, true},
      {2, 2, 300, 1, 64, 1, false, false},  {3, 2, 67, 131, 64, 1, true, true},
      {2, 3, 130, 70, 16, 1, false, true},  {3, 1, 5, 200, 20, 1, false, true},
      {1, 2, 1000, 3, 64, 1, false, false}, {2, 2, 129, 129, 32, 30, true, false},
      {3, 2, 50, 50, 16, 3, false, true},   {1, 1, 65, 65, 7, 1, true, false},
  };
  for (const Case& c : cases) compare(c);
  // Tile sizes that do not divide anything.
  compare({2, 2, 77, 93, 24, 3, true, true}, 7, 20);
  compare({1, 3, 45, 200, 64, 1, false, true}, 13, 48);
}

TEST_CASE("all-masked queries give zeros, never NaN") {
  Rng rng(5);
  Mat q = test::randn(4, 8, rng), k = test::randn(4, 8, rng), v = test::randn(4, 8, rng), out(4, 8);
  int lens[1] = {0};
  KernelShape s{1, 1, 4, 4, 8};
  KernelOptions o;
  o.key_lengths = lens;
  std::vector<float> w(16, 7.f), lse(4);
  o.weights = w.data();
  o.lse = lse.data();
  attention_blocked(q.data(), k.data(), v.data(), out.data(), s, o);
  CHECK(out.isZero(0));
  for (float x : w) CHECK(x == 0.f);
  // Backward through a fully masked row gives zero gradients too.
  Mat dq(4, 8), dk(4, 8), dv(4, 8);
  Mat dout = test::randn(4, 8, rng);
  attention_backward(q.data(), k.data(), v.data(), out.data(), dout.data(), lse.data(), dq.data(), dk.data(), dv.data(), s, o);
  CHECK(dq.isZero(0));
  CHECK(dk.isZero(0));
  CHECK(dv.isZero(0));
}

TEST_CASE("kernel backward matches central differences (masks, causal, strides)") {
  Rng rng(11);
  const int B = 2, H = 2, Nq = 5, Nk = 7, Dh = 4, W = H * Dh;
  std::vector<int> lens = {7, 4};
  for (bool causal : {false, true}) {
    Mat q = test::randn(B * Nq, W, rng), k = test::randn(B * Nk, W, rng), v = test::randn(B * Nk, W, rng);
    Mat R = test::randn(B * Nq, W, rng);
    KernelShape s{B, H, Nq, Nk, Dh};
    KernelOptions o;
    o.scale = 0.5f;
    o.causal = causal;
    o.key_lengths = lens.data();
    auto run = [&](std::vector<float>* lse) {
      Mat out(B * Nq, W);
      KernelOptions oo = o;
      if (lse) oo.lse = lse->data();
      attention_blocked(q.data(), k.data(), v.data(), out.data(), s, oo);
      return out;
    };
    std::vector<float> lse(B * H * Nq);
    Mat out = run(&lse);
    Mat dq(B * Nq, W), dk(B * Nk, W), dv(B * Nk, W);
    attention_backward(q.data(), k.data(), v.data(), out.data(), R.data(), lse.data(), dq.data(), dk.data(), dv.data(), s, o);
    auto loss = [&] { return weighted_sum(run(nullptr), R); };
    for (auto [name, x, g] : {std::tuple{"q", &q, &dq}, std::tuple{"k", &k, &dk}, std::tuple{"v", &v, &dv}}) {
      auto r = check_gradient(name, *x, *g, loss);
      CHECK_MESSAGE(r.ok, r.message);
    }
  }
}

TEST_CASE("kernel is deterministic for a fixed thread count") {
  Rng rng(3);
  Mat q = test::randn(2 * 200, 128, rng), k = test::randn(2 * 200, 128, rng), v = test::randn(2 * 200, 128, rng);
  KernelShape s{2, 2, 200, 200, 64};
  KernelOptions o;
  o.threads = 2;
  o.scale = 0.125f;
  Mat a(400, 128), b(400, 128);
  attention_blocked(q.data(), k.data(), v.data(), a.data(), s, o);
  attention_blocked(q.data(), k.data(), v.data(), b.data(), s, o);
  CHECK((a.array() == b.array()).all());
  o.threads = 1;
  attention_blocked(q.data(), k.data(), v.data(), b.data(), s, o);
  CHECK((a.array() == b.array()).all());   // work items never share accumulators
}

TEST_CASE("workspace grows linearly with N (no [N, N] buffer)") {
  KernelShape small{1, 8, 1024, 1024, 64}, big{1, 8, 16384, 16384, 64};
  KernelOptions o;
  o.threads = 2;
  const size_t a = attention_blocked_workspace_bytes(small, o), b = attention_blocked_workspace_bytes(big, o);
  CHECK(b < 16 * a);
  CHECK(b < (32u << 20));   // N = 16384: well under the 64 MiB budget
}

TEST_CASE("attnviz bench kernels --json reports every field; bad sizes are usage errors") {
  auto r = test::run_cli("bench kernels --quick --sizes 64,100 --naive-max 64 --no-models --json");
  REQUIRE(r.code == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["peak_gflops_1_thread"].get<double>() > 0);
  CHECK(j.contains("peak512_gflops_all_threads"));
#if defined(__AVX512F__)
  CHECK(j["peak512_gflops_all_threads"].get<double>() > 0);
#endif
  REQUIRE(j["kernels"].size() == 2);
  const auto& k0 = j["kernels"][0];
  CHECK(k0["n"] == 64);
  CHECK(k0["gflops_all_threads"].get<double>() > 0);
  CHECK(k0["naive_all_threads_s"].get<double>() > 0);
  CHECK(j["kernels"][1]["naive_all_threads_s"].is_null());   // above --naive-max
  CHECK(k0["workspace_mib"].get<double>() > 0);
  auto bad = test::run_cli("bench kernels --sizes 0");
  CHECK(bad.code == 1);
  CHECK(bad.out.find("--sizes") != std::string::npos);
}
