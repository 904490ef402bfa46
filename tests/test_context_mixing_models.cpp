// Context mixing by value zeroing (Mohebbi et al. 2023) in the pretrained-model families that call
// the kernels directly: decoder LMs (llama with grouped-query attention, gpt2) and the post-LN BERT
// encoder. Each tiny model's recorded ".mixing" against a brute-force float64 re-run of the block
// with token j's value vector zeroed (only the attention weights are taken from the engine: zeroing
// a value leaves them as they are); rows sum to 1; the causal mask's zeros; generation's per-step rows
// against one pass over the whole sequence; the CLI writing and drawing the tensors.
#include <doctest/doctest.h>

#include "test_util.hpp"

#include <attnviz/engine/context_mixing.hpp>
#include <attnviz/engine/rng.hpp>
#include <attnviz/models/encoder.hpp>
#include <attnviz/models/lm.hpp>
#include <attnviz/record/record.hpp>

#include <cmath>
#include <functional>
#include <map>

using namespace attnviz;
using namespace attnviz::models;
namespace fs = std::filesystem;
using attnviz::test::run_cli;

namespace {

using Md = Eigen::MatrixXd;

// y = x W^T (+ b), W [out, in] (torch layout), b [1, out]. lazyProduct: plain loops (the tests link
// no double-precision BLAS).
Md lin(const Md& x, const Mat& W, const Mat* b) {
  const Md wt = W.cast<double>().transpose();
  Md y = x.lazyProduct(wt);
  if (b) y.rowwise() += b->cast<double>().row(0);
  return y;
}
Md rms(const Md& x, const Mat& g, double eps) {
  Md y = x;
  for (Eigen::Index r = 0; r < x.rows(); ++r)
    y.row(r) = x.row(r) / std::sqrt(x.row(r).squaredNorm() / x.cols() + eps);
  return y.array().rowwise() * g.cast<double>().row(0).array();
}
Md ln(const Md& x, const Mat& g, const Mat& b, double eps) {
  Md y = x;
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    const double mu = x.row(r).mean();
    const double var = (x.row(r).array() - mu).square().mean();
    y.row(r) = ((x.row(r).array() - mu) / std::sqrt(var + eps)).matrix();
  }
  y = y.array().rowwise() * g.cast<double>().row(0).array();
  return y.rowwise() + b.cast<double>().row(0);
}
Md gelu_tanh(const Md& x) {
  return x.unaryExpr([](double v) { return 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))); });
}
Md gelu_erf(const Md& x) { return x.unaryExpr([](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }); }

// The block in double from its input x [T, D]: value rows V [T, Hkv*Dh] (query head h reads group
// h / (H / Hkv)), the weights w [H, T, T] from the engine, the output projection Wo [D, H*Dh] + bo,
// then s = x + attention output and y = rest(s). With zero >= 0 token zero's value rows are zeroed.
Md block(const Md& x, const Md& V, const float* w, int H, int Hkv, int Dh, const Mat& wo, const Mat* bo,
         const std::function<Md(const Md&)>& rest, int zero) {
  const int T = static_cast<int>(x.rows());
  Md Vz = V;
  if (zero >= 0) Vz.row(zero).setZero();
  Md ctx = Md::Zero(T, H * Dh);
  for (int h = 0; h < H; ++h) {
    const int g = h / (H / Hkv);
    for (int i = 0; i < T; ++i)
      for (int j = 0; j < T; ++j) ctx.block(i, h * Dh, 1, Dh) += w[(static_cast<size_t>(h) * T + i) * T + j] * Vz.block(j, g * Dh, 1, Dh);
  }
  return rest(x + lin(ctx, wo, bo));
}

// Value zeroing by brute force: C_ij = 1 - cos(y_i, y_i with v_j zeroed), rows normalized to sum 1.
// Also checks that the reference block reproduces the engine's block output y_engine.
std::vector<double> reference_mixing(const Md& x, const Md& V, const float* w, int H, int Hkv, int Dh, const Mat& wo,
                                     const Mat* bo, const std::function<Md(const Md&)>& rest, const Mat& y_engine) {
  const int T = static_cast<int>(x.rows());
  const Md y = block(x, V, w, H, Hkv, Dh, wo, bo, rest, -1);
  CHECK((y - y_engine.cast<double>()).cwiseAbs().maxCoeff() < 1e-4 * (1 + y.cwiseAbs().maxCoeff()));
  std::vector<double> c(static_cast<size_t>(T) * T, 0.0);
  for (int j = 0; j < T; ++j) {
    const Md yz = block(x, V, w, H, Hkv, Dh, wo, bo, rest, j);
    for (int i = 0; i < T; ++i)
      c[static_cast<size_t>(i) * T + j] = std::max(0.0, 1.0 - y.row(i).dot(yz.row(i)) / (y.row(i).norm() * yz.row(i).norm()));
  }
  for (int i = 0; i < T; ++i) {
    double s = 0;
    for (int j = 0; j < T; ++j) s += c[static_cast<size_t>(i) * T + j];
    for (int j = 0; j < T; ++j) c[static_cast<size_t>(i) * T + j] /= s;
  }
  return c;
}

void check_against(const nn::AttentionWeights& got, const std::vector<double>& ref, int T, bool causal) {
  REQUIRE(got.H == 1);
  REQUIRE(got.Nq == T);
  REQUIRE(got.Nk == T);
  for (int i = 0; i < T; ++i) {
    double sum = 0;
    for (int j = 0; j < T; ++j) {
      const float c = got.data[static_cast<size_t>(i) * T + j];
      CAPTURE(i);
      CAPTURE(j);
      CHECK(std::abs(c - ref[static_cast<size_t>(i) * T + j]) < 2e-3);
      if (causal && j > i) CHECK(c == 0.f);   // exactly: a later token's value never reaches row i
      sum += c;
    }
    CHECK(sum == doctest::Approx(1.0).epsilon(1e-5));
  }
}

struct KeepSink : AttentionSink {
  std::map<std::string, nn::AttentionWeights> w;
  void weights(const std::string& name, nn::AttentionWeights&& x, int) override { w[name] = x; }
  bool wants_mixing() const override { return true; }
};

}  // namespace

TEST_CASE("decoder LMs: value zeroing against a float64 re-run with v_j zeroed (llama GQA, gpt2); generation equals one pass") {
  for (const LmArch arch : {LmArch::Llama, LmArch::Gpt2}) {
    CAPTURE(lm_arch_name(arch));
    LmConfig c;
    c.arch = arch, c.name = "tiny", c.layers = 2, c.dim = 16, c.ffn = 24, c.vocab = 30, c.context = 32;
    c.heads = 4, c.kv_heads = arch == LmArch::Llama ? 2 : 4, c.head_dim = 4;
    LmModel m(c);
    m.init_random(7, 0.3f);
    const std::vector<int> ids = {1, 5, 7, 2, 9, 3, 4};
    const int T = static_cast<int>(ids.size()), H = c.heads, Dh = c.head_dim, D = c.dim;
    LmCache cache = m.new_cache(T);
    KeepSink sink;
    std::vector<Mat> blocks;
    LmForwardOptions fo;
    fo.block_outputs = &blocks;
    m.forward(ids, cache, &sink, fo);
    const double eps = c.norm_eps;
    for (int l = 0; l < c.layers; ++l) {
      CAPTURE(l);
      const std::string b = "blk." + std::to_string(l) + ".";
      auto W = [&](const std::string& n) -> const Mat& { return m.weight(b + n); };
      Md x(T, D);   // the block's input: the embedding (+ positions), or the previous block's output
      for (int t = 0; t < T; ++t) {
        if (l > 0) x.row(t) = blocks[l - 1].row(t).cast<double>();
        else {
          x.row(t) = m.weight("token_embd.weight").row(ids[t]).cast<double>();
          if (arch == LmArch::Gpt2) x.row(t) += m.weight("position_embd.weight").row(t).cast<double>();
        }
      }
      Md V;
      std::function<Md(const Md&)> rest;
      const Mat* bo = nullptr;
      if (arch == LmArch::Llama) {
        V = lin(rms(x, W("attn_norm.weight"), eps), W("attn_v.weight"), nullptr);   // [T, Hkv*Dh]
        rest = [&, b](const Md& s) {
          const Md xn = rms(s, W("ffn_norm.weight"), eps);
          const Md g = lin(xn, W("ffn_gate.weight"), nullptr), u = lin(xn, W("ffn_up.weight"), nullptr);
          const Md a = (g.array() / (1 + (-g.array()).exp()) * u.array()).matrix();   // silu(gate) * up
          return Md(s + lin(a, W("ffn_down.weight"), nullptr));
        };
      } else {
        const Md qkv = lin(ln(x, W("attn_norm.weight"), W("attn_norm.bias"), eps), W("attn_qkv.weight"), &W("attn_qkv.bias"));
        V = qkv.middleCols(2 * D, D);
        bo = &W("attn_output.bias");
        rest = [&, b](const Md& s) {
          const Md xn = ln(s, W("ffn_norm.weight"), W("ffn_norm.bias"), eps);
          return Md(s + lin(gelu_tanh(lin(xn, W("ffn_up.weight"), &W("ffn_up.bias"))), W("ffn_down.weight"), &W("ffn_down.bias")));
        };
      }
      const std::string n = "decoder.layer" + std::to_string(l) + ".self";
      REQUIRE(sink.w.count(n));
      REQUIRE(sink.w.count(n + ".mixing"));
      const std::vector<double> ref = reference_mixing(x, V, sink.w[n].data.data(), H, c.kv_heads, Dh,
                                                       W("attn_output.weight"), bo, rest, blocks[l]);
      check_against(sink.w[n + ".mixing"], ref, T, true);
    }

    // Generation: a 3-token prompt, 4 greedy steps on the KV cache (each step computes its own row);
    // the record equals one causal pass over all 7 tokens.
    GenerateOptions g;
    g.prompt = {1, 5, 7};
    g.steps = 4;
    g.record = g.mixing = true;
    const GenerateResult res = generate(m, g);
    REQUIRE(res.record);
    REQUIRE(res.ids.size() == 7);
    LmCache c2 = m.new_cache(7);
    KeepSink all;
    m.forward(res.ids, c2, &all);
    for (int l = 0; l < c.layers; ++l) {
      const std::string n = "decoder.layer" + std::to_string(l) + ".self.mixing";
      const AttentionTensor* t = res.record->find(n);
      REQUIRE(t);
      REQUIRE(t->data.size() == all.w[n].data.size());
      for (size_t i = 0; i < t->data.size(); ++i) CHECK(t->data[i] == doctest::Approx(all.w[n].data[i]).epsilon(1e-4).scale(1e-3));
    }
    // Weights + mixing per layer, then the rollout over the layers (rows sum to 1).
    CHECK(res.record->tensors.size() == static_cast<size_t>(2 * c.layers + 1));
    const AttentionTensor* roll = res.record->find("decoder.mixing_rollout");
    REQUIRE(roll);
    for (int i = 0; i < 7; ++i) {
      double s = 0;
      for (int j = 0; j < 7; ++j) s += roll->at(0, i, j);
      CHECK(s == doctest::Approx(1.0).epsilon(1e-4));
      for (int j = i + 1; j < 7; ++j) CHECK(roll->at(0, i, j) == 0.f);
    }
    CHECK(lm_record_bytes(c, 7, false, true) == lm_record_bytes(c, 7) * (c.layers * (H + 1) + 1) / (c.layers * H));
  }
}

TEST_CASE("pretrained encoder (post-LN BERT layout): value zeroing against a float64 re-run with v_j zeroed") {
  EncoderConfig c;
  c.family = EncoderFamily::Bert, c.name = "tiny", c.layers = 2, c.dim = 8, c.heads = 2, c.ffn = 16, c.vocab = 20;
  c.positions = 16, c.type_vocab = 2;
  EncoderModel m(c);
  m.init_random(4, 0.3f);
  // Non-trivial LayerNorm gains and biases: post-LN applies LN1 to the residual sum before the MLP.
  nn::Rng rng(9);
  for (const char* n : {"layer1.attn_norm.weight", "layer1.attn_norm.bias", "layer1.ffn_norm.weight", "layer1.ffn_norm.bias",
                        "layer1.attn.out.bias", "layer1.attn.v.bias", "layer1.ffn.up.bias"})
    for (Eigen::Index i = 0; i < m.weight(n).size(); ++i) m.weight(n).data()[i] += rng.normal(0.f, 0.3f);
  const std::vector<int> ids = {2, 7, 3, 11, 5, 9};
  const int T = static_cast<int>(ids.size()), D = c.dim;
  KeepSink sink;
  std::vector<Mat> outs;
  EncoderForwardOptions fo;
  fo.layer_outputs = &outs;
  m.forward_tokens(ids, {}, &sink, fo);
  auto W = [&](const char* n) -> const Mat& { return m.weight(std::string("layer1.") + n); };
  const double eps = c.norm_eps;
  const Md x = outs[0].cast<double>();   // post-LN: layer 1 reads layer 0's output as it is
  const Md V = lin(x, W("attn.v.weight"), &W("attn.v.bias"));
  const auto rest = [&](const Md& s) {
    const Md h = ln(s, W("attn_norm.weight"), W("attn_norm.bias"), eps);
    const Md f = lin(gelu_erf(lin(h, W("ffn.up.weight"), &W("ffn.up.bias"))), W("ffn.down.weight"), &W("ffn.down.bias"));
    return ln(h + f, W("ffn_norm.weight"), W("ffn_norm.bias"), eps);
  };
  REQUIRE(sink.w.count("encoder.layer1.self.mixing"));
  const std::vector<double> ref = reference_mixing(x, V, sink.w["encoder.layer1.self"].data.data(), c.heads, c.heads,
                                                   D / c.heads, W("attn.out.weight"), &W("attn.out.bias"), rest, outs[1]);
  check_against(sink.w["encoder.layer1.self.mixing"], ref, T, false);
  // Bidirectional: every entry is positive (every token sees every other).
  for (float v : sink.w["encoder.layer1.self.mixing"].data) CHECK(v > 0.f);
  // Recording mixing leaves the model's outputs and weights as they are.
  struct Plain : AttentionSink {
    std::map<std::string, nn::AttentionWeights> w;
    void weights(const std::string& name, nn::AttentionWeights&& x, int) override { w[name] = x; }
  } plain;
  const Mat y = m.forward_tokens(ids, {}, &plain);
  CHECK(plain.w.size() == 2);
  CHECK(plain.w["encoder.layer1.self"].data == sink.w["encoder.layer1.self"].data);
  CHECK(y == outs[1]);
}

TEST_CASE("value_zeroing from pieces: shapes are checked") {
  nn::AttentionWeights w;
  w.resize(1, 2, 3, 3);
  const Mat s = Mat::Zero(2, 4), wo = Mat::Zero(4, 4), v = Mat::Zero(3, 4);
  const nn::BlockRest rest = [](const Mat& a, Mat& y) { y = a; };
  CHECK_THROWS_AS(nn::value_zeroing(s, w, 0, {v.data(), 4, 2, 2, 2}, {&wo, true}, rest), std::invalid_argument);
}

TEST_CASE("CLI: --record mixing writes the tensors (generate, record encoder, record vit) and render heatmap draws them") {
  const fs::path hf = test::source_dir() / "tests" / "data" / "hf";
  const fs::path tmp = test::temp_dir("mixing_cli");
  const auto runs = test::record_tiny_hf(tmp, "mixing", "mixing,norms", "mixing");
  const std::string g = runs[0].file, b = runs[1].file, v = runs[2].file;
  for (const auto& [res, file, stack] : runs) {
    CAPTURE(file);
    INFO(res.out);
    REQUIRE(res.code == 0);
    const AttentionRecord rec = load_record(file);
    for (int l = 0; l < 2; ++l) {
      const AttentionTensor* w = rec.find(stack + ".layer" + std::to_string(l) + ".self");
      const AttentionTensor* c = rec.find(stack + ".layer" + std::to_string(l) + ".self.mixing");
      REQUIRE(w);
      REQUIRE(c);
      CHECK(c->heads == 1);
      CHECK(c->queries == w->queries);
      CHECK(c->keys == w->keys);
      for (int i = 0; i < c->queries; ++i) {
        double s = 0;
        for (int j = 0; j < c->keys; ++j) {
          s += c->at(0, i, j);
          if (stack == "decoder" && j > i) CHECK(c->at(0, i, j) == 0.f);
        }
        CHECK(s == doctest::Approx(1.0).epsilon(1e-4));
      }
    }
    REQUIRE(rec.find(stack + ".mixing_rollout"));
  }
  CHECK(load_record(b).find("encoder.layer1.self.norm_sum"));
  auto r = run_cli("render heatmap '" + g + "' --tensor decoder.layer1.self.mixing -o '" + (tmp / "h.png").string() + "'");
  INFO(r.out);
  CHECK(r.code == 0);
  r = run_cli("render heatmap '" + v + "' --tensor vit.mixing_rollout -o '" + (tmp / "r.png").string() + "'");
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(fs::file_size(tmp / "h.png") > 1000);
  CHECK(fs::file_size(tmp / "r.png") > 1000);
  // Mixing without a record to write is a usage error.
  CHECK(run_cli("generate --model '" + (hf / "gpt2-tiny").string() + "' --prompt hi --steps 1 --record mixing").code == 1);
}
