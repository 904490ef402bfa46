// Norm-based attention (Kobayashi et al. 2020) in every transformer the engine runs: the MNIST ViT,
// the transformer text classifier, the decoder LMs (llama with grouped-query attention, gpt2; the
// KV-cache steps of generation against one prefill) and the pretrained encoders, each tiny model's
// recorded ".norm" / ".norm_sum" against a double-precision computation from the layer's input; the
// CLI writing the tensors and rendering them.
#include <doctest/doctest.h>

#include "test_util.hpp"
#include "models/textcls_arch.hpp"

#include <attnviz/engine/lm_ops.hpp>
#include <attnviz/engine/norm_attention.hpp>
#include <attnviz/engine/rng.hpp>
#include <attnviz/models/encoder.hpp>
#include <attnviz/models/lm.hpp>
#include <attnviz/models/mnist.hpp>
#include <attnviz/models/textcls.hpp>
#include <attnviz/models/vit.hpp>
#include <attnviz/record/record.hpp>

#include <cmath>
#include <functional>
#include <map>

using namespace attnviz;
using namespace attnviz::models;
namespace fs = std::filesystem;
using attnviz::test::run_cli;

namespace {

// The reference in double: value of head h at key j = v(j, h) [Dh] (grouping already applied),
// f_h(x_j) = v(j, h) Wo_h with Wo_h = rows h*Dh.. of wo [H*Dh, D] (or columns of [D, H*Dh] when
// out_by_in); then alpha ||f|| per head and ||sum_h alpha f_h|| summed, compared with the record.
void check_norms(const std::function<std::vector<double>(int j, int h)>& v, const Mat& wo, bool out_by_in,
                 const float* w, int H, int Nq, int Nk, const float* per_head, const float* summed, int q0 = 0,
                 int rows = -1) {
  // w, per_head: [H, rows, Nk] (rows = Nq unless the tensors hold more rows); summed: [rows, Nk];
  // queries q0 .. q0+Nq-1 are compared.
  if (rows < 0) rows = Nq;
  const int D = static_cast<int>(out_by_in ? wo.rows() : wo.cols());
  int checked = 0;
  for (int j = 0; j < Nk; ++j) {
    std::vector<std::vector<double>> f(H, std::vector<double>(D, 0.0));
    for (int h = 0; h < H; ++h) {
      const std::vector<double> vh = v(j, h);
      const int Dh = static_cast<int>(vh.size());
      for (int e = 0; e < Dh; ++e)
        for (int d = 0; d < D; ++d) f[h][d] += vh[e] * (out_by_in ? wo(d, h * Dh + e) : wo(h * Dh + e, d));
    }
    for (int i = q0; i < q0 + Nq; ++i) {
      std::vector<double> sum(D, 0.0);
      for (int h = 0; h < H; ++h) {
        const double a = w[(static_cast<size_t>(h) * rows + i) * Nk + j];
        double n2 = 0;
        for (int d = 0; d < D; ++d) n2 += f[h][d] * f[h][d], sum[d] += a * f[h][d];
        CHECK(per_head[(static_cast<size_t>(h) * rows + i) * Nk + j] == doctest::Approx(a * std::sqrt(n2)).epsilon(1e-4));
      }
      double s2 = 0;
      for (double x : sum) s2 += x * x;
      CHECK(summed[static_cast<size_t>(i) * Nk + j] == doctest::Approx(std::sqrt(s2)).epsilon(1e-4));
      ++checked;
    }
  }
  CHECK(checked == Nq * Nk);
}

// v_j = x_j W + b (W [Din, D] engine layout, or [D, Din] out_by_in), columns of group g.
std::function<std::vector<double>(int, int)> values_of(const Mat& x, const Mat& W, const Mat* b, bool out_by_in, int H,
                                                       int kv_heads, int Dh, int col0 = 0) {
  return [&x, &W, b, out_by_in, H, kv_heads, Dh, col0](int j, int h) {
    const int g = h / (H / kv_heads);
    std::vector<double> v(Dh);
    for (int e = 0; e < Dh; ++e) {
      const int c = col0 + g * Dh + e;
      double s = b ? (*b)(0, c) : 0.0;
      for (int k = 0; k < x.cols(); ++k) s += double(x(j, k)) * (out_by_in ? W(c, k) : W(k, c));
      v[e] = s;
    }
    return v;
  };
}

struct KeepSink : AttentionSink {
  bool norms = true;
  std::map<std::string, nn::AttentionWeights> w;
  void weights(const std::string& name, nn::AttentionWeights&& x, int) override { w[name] = x; }
  bool wants_norms() const override { return norms; }
};

}  // namespace

TEST_CASE("MNIST ViT: recorded norms against a double computation; mixing rows sum to 1; weights unchanged") {
  MnistConfig cfg;
  cfg.image = 8, cfg.patch = 4, cfg.dim = 8, cfg.depth = 2, cfg.heads = 2, cfg.mlp = 16;
  auto model = make_mnist_model(cfg, 3);
  auto& vit = dynamic_cast<VitModel&>(*model);
  nn::Rng rng(5);
  ImageSet set;
  set.count = 2, set.rows = set.cols = 8;
  for (int i = 0; i < 2 * 64; ++i) set.pixels.push_back(static_cast<float>(rng.uniform()));
  set.labels = {1, 2};
  // Layer 0's attention input: LN1 of the patch embedding (copies: the model's caches stay).
  nn::PatchEmbedding embed = vit.embed;
  nn::LayerNorm ln1 = vit.blocks[0].ln1;
  const Mat x0 = ln1.forward(embed.forward(image_batch(set, {1})));   // [T, D]
  const auto plain = record_mnist(*model, set, {1});
  RecordOptions what;
  what.norms = what.mixing = true;
  const auto recs = record_mnist(*model, set, {1}, "", what);
  const AttentionRecord& r = recs[0];
  const int T = cfg.tokens(), H = cfg.heads, Dh = cfg.dim / H;
  for (int l = 0; l < 2; ++l) {
    const std::string n = "vit.layer" + std::to_string(l) + ".self";
    REQUIRE(r.find(n + ".norm"));
    REQUIRE(r.find(n + ".norm_sum"));
    REQUIRE(r.find(n + ".mixing"));
    CHECK(r.find(n + ".norm")->heads == H);
    CHECK(r.find(n + ".norm_sum")->heads == 1);
    CHECK(r.find(n)->data == plain[0].find(n)->data);   // recording more never changes the weights
    for (int i = 0; i < T; ++i) {
      double s = 0;
      for (int j = 0; j < T; ++j) s += r.find(n + ".mixing")->at(0, i, j);
      CHECK(s == doctest::Approx(1.0).epsilon(1e-5));
    }
  }
  CHECK(r.find("vit.mixing_rollout"));
  CHECK(r.layers("vit", "self").size() == 2);   // cls / rollout still see only the weights
  CHECK(r.gradients.size() == plain[0].gradients.size());
  const auto& attn = vit.blocks[0].attn;
  check_norms(values_of(x0, attn.wv.weight.value, &attn.wv.bias.value, false, H, H, Dh), attn.wo.weight.value, false,
              r.find("vit.layer0.self")->data.data(), H, T, T, r.find("vit.layer0.self.norm")->data.data(),
              r.find("vit.layer0.self.norm_sum")->data.data());
}

TEST_CASE("transformer text classifier: norms and mixing per text, cropped to its length, against a double computation") {
  TextClsConfig cfg;
  cfg.arch = "transformer", cfg.dim = 8, cfg.layers = 1, cfg.heads = 2, cfg.mlp = 16, cfg.max_len = 16;
  auto m = make_textcls_model(cfg, Vocabulary::build({{"a", "b", "c", "d"}}), {"x", "y"}, 7);
  RecordOptions what;
  what.norms = what.mixing = true;
  const auto recs = record_textcls(*m, {{"a b c d", -1, "t"}, {"b a", -1, "t"}}, what);
  REQUIRE(recs.size() == 2);
  const AttentionRecord& r = recs[1];   // the shorter text: its tensors are cropped to [CLS] + 2 words
  const AttentionTensor* w = r.find("encoder.layer0.self");
  const AttentionTensor* n = r.find("encoder.layer0.self.norm");
  const AttentionTensor* s = r.find("encoder.layer0.self.norm_sum");
  REQUIRE(w);
  REQUIRE(n);
  REQUIRE(s);
  REQUIRE(r.find("encoder.layer0.self.mixing"));
  REQUIRE(r.find("encoder.mixing_rollout"));
  CHECK(n->queries == 3);
  CHECK(n->keys == 3);
  CHECK(n->key_axis == "tokens_cls");
  // The attention input of text 1: LN1 of embedding + position of [CLS] b a (as the model builds it).
  auto& tc = dynamic_cast<TransformerClassifier&>(*m);
  const TextBatch batch = tc.batch({"b a"});
  const std::vector<int> ids = {Vocabulary::kBos, batch.ids[0], batch.ids[1]};
  Mat x(3, cfg.dim);
  for (int t = 0; t < 3; ++t) x.row(t) = tc.embed.weight.value.row(ids[t]) + tc.pos.weight.value.row(t);
  nn::LayerNorm ln1 = tc.blocks[0].ln1;
  const Mat xn = ln1.forward(x);
  const nn::MultiHeadAttention& attn = tc.blocks[0].attn;
  const Mat& wo = attn.wo.weight.value;
  const Mat* bv = &attn.wv.bias.value;
  const Mat& wvm = attn.wv.weight.value;
  check_norms(values_of(xn, wvm, bv, false, 2, 2, 4), wo, false, w->data.data(), 2, 3, 3,
              n->data.data(), s->data.data());
}

TEST_CASE("decoder LMs: prefill norms against a double computation (llama GQA, gpt2); generation's cached steps equal one prefill") {
  for (const LmArch arch : {LmArch::Llama, LmArch::Gpt2}) {
    CAPTURE(lm_arch_name(arch));
    LmConfig c;
    c.arch = arch, c.name = "tiny", c.layers = 2, c.dim = 16, c.ffn = 24, c.vocab = 30, c.context = 32;
    c.heads = 4, c.kv_heads = arch == LmArch::Llama ? 2 : 4, c.head_dim = 4;
    LmModel m(c);
    m.init_random(11, 0.3f);
    const std::vector<int> ids = {1, 5, 7, 2, 9, 3};
    const int T = static_cast<int>(ids.size()), H = c.heads, Dh = c.head_dim;
    LmCache cache = m.new_cache(T);
    KeepSink sink;
    std::vector<Mat> blocks;
    LmForwardOptions fo;
    fo.block_outputs = &blocks;
    m.forward(ids, cache, &sink, fo);
    for (int l = 0; l < c.layers; ++l) {
      CAPTURE(l);
      const std::string b = "blk." + std::to_string(l) + ".";
      Mat x(T, c.dim);   // the block's input: the embedding (+ positions), or the previous block's output
      if (l == 0)
        for (int t = 0; t < T; ++t) {
          x.row(t) = m.weight("token_embd.weight").row(ids[t]);
          if (arch == LmArch::Gpt2) x.row(t) += m.weight("position_embd.weight").row(t);
        }
      else x = blocks[l - 1];
      Mat xn(T, c.dim);
      if (arch == LmArch::Llama) nn::rms_norm_rows(x, m.weight(b + "attn_norm.weight").data(), c.norm_eps, xn);
      else nn::layer_norm_rows(x, m.weight(b + "attn_norm.weight").data(), m.weight(b + "attn_norm.bias").data(), c.norm_eps, xn);
      const std::string n = "decoder.layer" + std::to_string(l) + ".self";
      REQUIRE(sink.w.count(n + ".norm"));
      const auto v = arch == LmArch::Llama ? values_of(xn, m.weight(b + "attn_v.weight"), nullptr, true, H, c.kv_heads, Dh)
                                           : values_of(xn, m.weight(b + "attn_qkv.weight"), &m.weight(b + "attn_qkv.bias"),
                                                       true, H, H, Dh, 2 * c.dim);
      check_norms(v, m.weight(b + "attn_output.weight"), true, sink.w[n].data.data(), H, T, T,
                  sink.w[n + ".norm"].data.data(), sink.w[n + ".norm_sum"].data.data());
    }
    // Generation: a 3-token prompt, 3 greedy steps on the KV cache (each step adds one key's Gram
    // matrix); the record equals a prefill over all 6 tokens.
    GenerateOptions g;
    g.prompt = {1, 5, 7};
    g.steps = 3;
    g.record = g.norms = true;
    const GenerateResult res = generate(m, g);
    REQUIRE(res.record);
    REQUIRE(res.ids.size() == 6);
    LmCache c2 = m.new_cache(6);
    KeepSink all;
    m.forward(res.ids, c2, &all);
    for (int l = 0; l < c.layers; ++l)
      for (const std::string suffix : {".norm", ".norm_sum"}) {
        const std::string n = "decoder.layer" + std::to_string(l) + ".self" + suffix;
        const AttentionTensor* t = res.record->find(n);
        REQUIRE(t);
        REQUIRE(t->data.size() == all.w[n].data.size());
        for (size_t i = 0; i < t->data.size(); ++i) CHECK(t->data[i] == doctest::Approx(all.w[n].data[i]).epsilon(1e-4));
      }
    CHECK(res.record->tensors.size() == static_cast<size_t>(3 * c.layers));
    CHECK(lm_record_bytes(c, 6, true) == lm_record_bytes(c, 6) * (2 * H + 1) / H);
  }
}

TEST_CASE("pretrained encoder (post-LN BERT layout): norms against a double computation from the layer input") {
  EncoderConfig c;
  c.family = EncoderFamily::Bert, c.name = "tiny", c.layers = 2, c.dim = 8, c.heads = 2, c.ffn = 16, c.vocab = 20;
  c.positions = 16, c.type_vocab = 2;
  EncoderModel m(c);
  m.init_random(4, 0.3f);
  const std::vector<int> ids = {2, 7, 3, 11, 5};
  KeepSink sink;
  std::vector<Mat> outs;
  EncoderForwardOptions fo;
  fo.layer_outputs = &outs;
  m.forward_tokens(ids, {}, &sink, fo);
  // Post-LN: layer 1's attention reads layer 0's output as it is.
  check_norms(values_of(outs[0], m.weight("layer1.attn.v.weight"), &m.weight("layer1.attn.v.bias"), true, 2, 2, 4),
              m.weight("layer1.attn.out.weight"), true, sink.w["encoder.layer1.self"].data.data(), 2, 5, 5,
              sink.w["encoder.layer1.self.norm"].data.data(), sink.w["encoder.layer1.self.norm_sum"].data.data());
  KeepSink none;
  none.norms = false;
  m.forward_tokens(ids, {}, &none);
  CHECK(none.w.size() == 2);
  CHECK(none.w["encoder.layer1.self"].data == sink.w["encoder.layer1.self"].data);
}

TEST_CASE("CLI: --record norms writes the tensors (generate, record encoder, record vit) and the views draw them") {
  const fs::path hf = test::source_dir() / "tests" / "data" / "hf";
  const fs::path tmp = test::temp_dir("norm_cli");
  const auto runs = test::record_tiny_hf(tmp, "norms", "norms", "norms");
  const std::string g = runs[0].file, b = runs[1].file;
  for (const auto& [res, file, stack] : runs) {
    CAPTURE(file);
    INFO(res.out);
    REQUIRE(res.code == 0);
    const AttentionRecord rec = load_record(file);
    const AttentionTensor* w = rec.find(stack + ".layer1.self");
    const AttentionTensor* n = rec.find(stack + ".layer1.self.norm");
    const AttentionTensor* s = rec.find(stack + ".layer1.self.norm_sum");
    REQUIRE(w);
    REQUIRE(n);
    REQUIRE(s);
    CHECK(n->heads == w->heads);
    CHECK(s->heads == 1);
    CHECK(n->queries == w->queries);
    // The per-head norm is the weight times a per-key factor ||f_h(x_j)|| >= 0: zero exactly where
    // the weight is (the causal mask of the LM included).
    for (size_t i = 0; i < w->data.size(); ++i) CHECK((w->data[i] == 0.f) == (n->data[i] == 0.f));
  }
  // Every view takes them by name: a heatmap of one head and a grid of all heads.
  auto r = run_cli("render heatmap '" + b + "' --tensor encoder.layer1.self.norm_sum -o '" + (tmp / "h.png").string() + "'");
  INFO(r.out);
  CHECK(r.code == 0);
  r = run_cli("render grid '" + g + "' --tensors decoder.layer1.self.norm -o '" + (tmp / "grid.png").string() + "'");
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK(fs::file_size(tmp / "h.png") > 1000);
  CHECK(fs::file_size(tmp / "grid.png") > 1000);
  // Asking for norms without a record to write is a usage error, and so is a kind the command does not record.
  CHECK(run_cli("generate --model '" + (hf / "gpt2-tiny").string() + "' --prompt hi --steps 1 --record norms").code == 1);
  // (record encoder now records relevance for a classification head: test_hf_relevance.)
  CHECK(run_cli("record encoder --model '" + (hf / "bert-tiny").string() + "' --text hi --record gradients -o '" + (tmp / "x.safetensors").string() + "'").code == 1);
  CHECK(!fs::exists(tmp / "x.safetensors"));
}
