// Decoder-only LM families (llama, gpt2): config, tensor-name tables, the forward pass with a KV
// cache on the engine's kernels, record-size check, and token sampling.
#include <attnviz/models/lm.hpp>

#include <attnviz/engine/attention.hpp>
#include <attnviz/engine/context_mixing.hpp>
#include <attnviz/engine/norm_attention.hpp>
#include <attnviz/engine/ops.hpp>
#include <attnviz/error.hpp>

#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>

namespace attnviz::models {

const char* lm_arch_name(LmArch a) { return a == LmArch::Llama ? "llama" : "gpt2"; }

void LmConfig::validate(const std::string& path) const {
  auto bad = [&](const std::string& what) { throw InputError(path, "model config: " + what); };
  if (layers <= 0 || dim <= 0 || heads <= 0 || kv_heads <= 0 || head_dim <= 0 || ffn <= 0 || vocab <= 0 ||
      context <= 0)
    bad(fmt::format("sizes must be positive (layers {}, dim {}, heads {}, kv_heads {}, head_dim {}, ffn {}, "
                    "vocab {}, context {})", layers, dim, heads, kv_heads, head_dim, ffn, vocab, context));
  // Sizes far beyond any model this tool runs are refused before anything is allocated.
  if (layers > 4096 || dim > (1 << 16) || heads > 1024 || head_dim > 1024 || ffn > (1 << 18) ||
      vocab > (1 << 22) || context > (1 << 20))
    bad("sizes beyond the supported range");
  if (heads % kv_heads != 0) bad(fmt::format("{} query heads are not a multiple of {} key/value heads", heads, kv_heads));
  if (arch == LmArch::Llama && head_dim % 2 != 0) bad(fmt::format("RoPE needs an even head size, found {}", head_dim));
  if (arch == LmArch::Gpt2 && (heads * head_dim != dim || kv_heads != heads))
    bad(fmt::format("gpt2 needs heads x head_dim = dim and no GQA (heads {}, head_dim {}, dim {}, kv_heads {})",
                    heads, head_dim, dim, kv_heads));
  if (!(norm_eps > 0) || !(rope_base > 0) || !(rope_scale > 0)) bad("norm epsilon, RoPE base and scale must be positive");
}

std::string LmConfig::to_json() const {
  nlohmann::ordered_json j;
  j["arch"] = lm_arch_name(arch);
  j["name"] = name;
  j["layers"] = layers;
  j["dim"] = dim;
  j["heads"] = heads;
  j["kv_heads"] = kv_heads;
  j["head_dim"] = head_dim;
  j["ffn"] = ffn;
  j["vocab"] = vocab;
  j["context"] = context;
  j["norm_eps"] = norm_eps;
  if (arch == LmArch::Llama) {
    j["rope_base"] = rope_base;
    j["rope_scale"] = rope_scale;
    j["rope_pairs"] = rope_style == nn::RopeStyle::Adjacent ? "adjacent" : "halves";
    j["qkv_bias"] = qkv_bias;
  }
  j["tied_output"] = tied_output;
  j["activation"] = arch == LmArch::Llama ? "swiglu" : "gelu_tanh";
  return j.dump();
}

std::vector<LmTensorSpec> lm_tensor_table(const LmConfig& c) {
  std::vector<LmTensorSpec> t;
  const long D = c.dim, Q = static_cast<long>(c.heads) * c.head_dim, KV = static_cast<long>(c.kv_heads) * c.head_dim,
             F = c.ffn, V = c.vocab;
  auto add = [&](std::string name, long rows, long cols, bool optional = false) {
    t.push_back({std::move(name), rows, cols, optional});
  };
  add("token_embd.weight", V, D);
  if (c.arch == LmArch::Gpt2) add("position_embd.weight", c.context, D);
  for (int l = 0; l < c.layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    if (c.arch == LmArch::Llama) {
      add(b + "attn_norm.weight", 1, D);
      add(b + "attn_q.weight", Q, D);
      add(b + "attn_k.weight", KV, D);
      add(b + "attn_v.weight", KV, D);
      if (c.qkv_bias) {
        add(b + "attn_q.bias", 1, Q);
        add(b + "attn_k.bias", 1, KV);
        add(b + "attn_v.bias", 1, KV);
      }
      add(b + "attn_output.weight", D, Q);
      add(b + "ffn_norm.weight", 1, D);
      add(b + "ffn_gate.weight", F, D);
      add(b + "ffn_up.weight", F, D);
      add(b + "ffn_down.weight", D, F);
    } else {
      add(b + "attn_norm.weight", 1, D);
      add(b + "attn_norm.bias", 1, D);
      add(b + "attn_qkv.weight", 3 * D, D);
      add(b + "attn_qkv.bias", 1, 3 * D);
      add(b + "attn_output.weight", D, D);
      add(b + "attn_output.bias", 1, D);
      add(b + "ffn_norm.weight", 1, D);
      add(b + "ffn_norm.bias", 1, D);
      add(b + "ffn_up.weight", F, D);
      add(b + "ffn_up.bias", 1, F);
      add(b + "ffn_down.weight", D, F);
      add(b + "ffn_down.bias", 1, D);
    }
  }
  add("output_norm.weight", 1, D);
  if (c.arch == LmArch::Gpt2) add("output_norm.bias", 1, D);
  add("output.weight", V, D, c.tied_output);
  return t;
}

std::int64_t LmConfig::parameters() const {
  std::int64_t n = 0;
  for (const auto& s : lm_tensor_table(*this))
    if (!s.optional) n += static_cast<std::int64_t>(s.rows) * s.cols;
  return n;
}

std::uint64_t lm_record_bytes(const LmConfig& cfg, int T, bool norms, bool mixing) {
  // weights (+ .norm [H] + .norm_sum [1]) (+ .mixing [1], and the rollout once)
  const std::uint64_t per_layer = (norms ? 2ull * cfg.heads + 1 : cfg.heads) + (mixing ? 1 : 0);
  const std::uint64_t maps = static_cast<std::uint64_t>(cfg.layers) * per_layer + (mixing ? 1 : 0);
  return maps * static_cast<std::uint64_t>(T) * T * sizeof(float);
}

void check_record_size(const LmConfig& cfg, int T, double max_mib, bool norms, bool mixing) {
  const double mib = static_cast<double>(lm_record_bytes(cfg, T, norms, mixing)) / (1024.0 * 1024.0);
  if (mib > max_mib)
    throw UsageError(fmt::format("a record of {} layers x {} heads x {}x{} tokens needs {:.0f} MiB, above "
                                 "--max-record-mib {:.0f}: use fewer tokens or raise the limit",
                                 cfg.layers, cfg.heads, T, T, mib, max_mib));
}

// ---------------------------------------------------------------------------------------------
struct LmModel::Layer {
  const Mat *attn_norm = nullptr, *attn_norm_b = nullptr;
  const Mat *wq = nullptr, *wk = nullptr, *wv = nullptr, *bq = nullptr, *bk = nullptr, *bv = nullptr;
  const Mat *wqkv = nullptr, *bqkv = nullptr;   // gpt2: fused [3D, D]
  const Mat *wo = nullptr, *bo = nullptr;
  const Mat *ffn_norm = nullptr, *ffn_norm_b = nullptr;
  const Mat *gate = nullptr, *up = nullptr, *bup = nullptr, *down = nullptr, *bdown = nullptr;
  std::string record_name;   // "decoder.layer<L>.self", built once
};

LmModel::LmModel(const LmConfig& cfg) : cfg_(cfg) {
  cfg_.validate();
  for (const auto& s : lm_tensor_table(cfg_)) {
    if (s.optional) continue;
    auto p = std::make_unique<nn::Param>();
    p->value = Mat::Zero(s.rows, s.cols);   // no gradient buffer: inference only
    params_.add(*p, s.name);
    owned_.push_back(std::move(p));
  }
  if (cfg_.arch == LmArch::Llama)
    rope_ = nn::RopeTable({cfg_.head_dim, cfg_.rope_base, cfg_.rope_scale, cfg_.rope_style}, cfg_.context);
  bind();
}

Mat& LmModel::weight(const std::string& name) {
  nn::Param* p = params_.find(name);
  if (!p) throw std::out_of_range("LmModel: no tensor " + name);
  return p->value;
}
const Mat& LmModel::weight(const std::string& name) const { return const_cast<LmModel*>(this)->weight(name); }

void LmModel::bind() {
  auto get = [&](const std::string& n) -> const Mat* { return &weight(n); };
  auto opt = [&](const std::string& n) -> const Mat* {
    nn::Param* p = params_.find(n);
    return p ? &p->value : nullptr;
  };
  tok_ = get("token_embd.weight");
  pos_ = opt("position_embd.weight");
  out_norm_ = get("output_norm.weight");
  out_norm_b_ = opt("output_norm.bias");
  output_ = cfg_.tied_output ? tok_ : get("output.weight");
  layers_.clear();
  for (int l = 0; l < cfg_.layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    auto L = std::make_shared<Layer>();
    L->attn_norm = get(b + "attn_norm.weight");
    L->attn_norm_b = opt(b + "attn_norm.bias");
    L->wq = opt(b + "attn_q.weight");
    L->wk = opt(b + "attn_k.weight");
    L->wv = opt(b + "attn_v.weight");
    L->bq = opt(b + "attn_q.bias");
    L->bk = opt(b + "attn_k.bias");
    L->bv = opt(b + "attn_v.bias");
    L->wqkv = opt(b + "attn_qkv.weight");
    L->bqkv = opt(b + "attn_qkv.bias");
    L->wo = get(b + "attn_output.weight");
    L->bo = opt(b + "attn_output.bias");
    L->ffn_norm = get(b + "ffn_norm.weight");
    L->ffn_norm_b = opt(b + "ffn_norm.bias");
    L->gate = opt(b + "ffn_gate.weight");
    L->up = get(b + "ffn_up.weight");
    L->bup = opt(b + "ffn_up.bias");
    L->down = get(b + "ffn_down.weight");
    L->bdown = opt(b + "ffn_down.bias");
    L->record_name = "decoder.layer" + std::to_string(l) + ".self";
    layers_.push_back(std::move(L));
  }
}

void LmModel::init_random(std::uint64_t seed, float stddev) {
  nn::Rng rng(seed);
  for (nn::Param* p : params_.params()) {
    const bool norm = p->name.find("_norm.") != std::string::npos;
    const bool bias = p->name.size() > 5 && p->name.compare(p->name.size() - 5, 5, ".bias") == 0;
    if (norm && !bias) p->value.setOnes();
    else if (bias) p->value.setZero();
    else
      for (Eigen::Index i = 0; i < p->value.size(); ++i) p->value.data()[i] = rng.normal(0.f, stddev);
  }
}

LmCache LmModel::new_cache(int capacity) const {
  if (capacity <= 0) throw UsageError("KV cache capacity must be positive");
  if (capacity > cfg_.context)
    throw UsageError(fmt::format("{} positions exceed the model's context of {}", capacity, cfg_.context));
  LmCache c;
  c.capacity = capacity;
  const int KV = cfg_.kv_heads * cfg_.head_dim;
  c.k.assign(cfg_.layers, Mat::Zero(capacity, KV));
  c.v.assign(cfg_.layers, Mat::Zero(capacity, KV));
  c.scores.assign(static_cast<size_t>(cfg_.heads) * capacity, 0.f);
  c.w.resize(cfg_.layers);
  c.gram.resize(cfg_.layers);
  return c;
}

namespace {

inline void ensure(Mat& m, Eigen::Index rows, Eigen::Index cols) {
  if (m.rows() != rows || m.cols() != cols) m.resize(rows, cols);
}

}  // namespace

void LmModel::layer_forward(int l, int T, int p0, LmCache& c, AttentionSink* sink, int threads) const {
  // x: [T, D] residual stream at positions p0 .. p0+T-1; K/V rows p0.. of this layer's cache get written.
  const Layer& L = *layers_[l];
  const int D = cfg_.dim, H = cfg_.heads, Hkv = cfg_.kv_heads, Dh = cfg_.head_dim;
  const int QW = H * Dh, KV = Hkv * Dh, Nk = p0 + T;
  const bool llama = cfg_.arch == LmArch::Llama;
  float* kc = c.k[l].data();   // [capacity, KV]
  float* vc = c.v[l].data();

  // --- attention block: xn = norm(x); q, k, v; RoPE; causal attention; x += att Wo^T (+ bo)
  const float* qptr;
  int ldq;
  if (llama) {
    nn::rms_norm_rows(c.x, L.attn_norm->data(), cfg_.norm_eps, c.xn);
    ensure(c.q, T, QW);
    nn::linear_rows(c.xn, *L.wq, L.bq, c.q.data(), QW, threads);
    nn::linear_rows(c.xn, *L.wk, L.bk, kc + static_cast<size_t>(p0) * KV, KV, threads);
    nn::linear_rows(c.xn, *L.wv, L.bv, vc + static_cast<size_t>(p0) * KV, KV, threads);
    rope_.apply(c.q.data(), T, H, QW, p0);
    rope_.apply(kc + static_cast<size_t>(p0) * KV, T, Hkv, KV, p0);
    qptr = c.q.data();
    ldq = QW;
  } else {
    nn::layer_norm_rows(c.x, L.attn_norm->data(), L.attn_norm_b->data(), cfg_.norm_eps, c.xn);
    ensure(c.qkv, T, 3 * D);
    nn::linear_rows(c.xn, *L.wqkv, L.bqkv, c.qkv.data(), 3 * D, threads);   // [T, 3D] = q | k | v
    for (int t = 0; t < T; ++t) {
      std::copy_n(c.qkv.data() + static_cast<size_t>(t) * 3 * D + D, D, kc + static_cast<size_t>(p0 + t) * KV);
      std::copy_n(c.qkv.data() + static_cast<size_t>(t) * 3 * D + 2 * D, D, vc + static_cast<size_t>(p0 + t) * KV);
    }
    qptr = c.qkv.data();
    ldq = 3 * D;
  }

  ensure(c.att, T, QW);
  const float scale = 1.f / std::sqrt(static_cast<float>(Dh));
  float* wout = nullptr;
  if (sink) {
    nn::AttentionWeights& w = c.w[l];
    const size_t n = static_cast<size_t>(H) * T * Nk;
    w.B = 1; w.H = H; w.Nq = T; w.Nk = Nk;
    w.data.resize(n);   // keeps its capacity between steps (no allocation once grown)
    wout = w.data.data();
  }
  if (T == 1) {
    // Generation step: one query per head against the whole cache (all visible).
    nn::attention_decode(qptr, kc, vc, c.att.data(), {H, Hkv, Dh, Nk, KV, KV}, scale, c.scores.data(), wout, threads);
  } else {
    // Prefill from an empty cache: causal attention of T queries over T keys, K/V read in place.
    nn::KernelShape ks;
    ks.B = 1; ks.H = H; ks.Nq = T; ks.Nk = T; ks.Dh = Dh;
    ks.ldq = ldq; ks.ldk = KV; ks.ldv = KV; ks.ldo = QW; ks.kv_heads = Hkv;
    nn::KernelOptions ko;
    ko.scale = scale;
    ko.causal = true;
    ko.weights = wout;
    ko.threads = threads;
    nn::attention_blocked(qptr, kc, vc, c.att.data(), ks, ko);
  }
  ensure(c.proj, T, D);
  nn::linear_rows(c.att, *L.wo, L.bo, c.proj.data(), D, threads);
  c.x.noalias() += c.proj;   // the residual sums s the MLP half starts from

  if (sink && sink->wants_norms()) {
    // Norm-based attention: the Gram matrices of the new keys' transformed values join the cached
    // ones (a key's never changes), then each (query, key) costs H^2.
    std::vector<double>& gram = c.gram[l];
    if (gram.size() < static_cast<size_t>(c.capacity) * H * H) gram.resize(static_cast<size_t>(c.capacity) * H * H);
    nn::value_gram({vc, KV, H, Hkv, Dh}, {L.wo, true}, p0, T, gram.data());
    nn::NormAttention n;
    n.per_head.resize(1, H, T, Nk);
    n.summed.resize(1, 1, T, Nk);
    nn::norm_attention_from_gram(gram.data(), c.w[l], 0, n);
    sink->weights(L.record_name + ".norm", std::move(n.per_head), p0);
    sink->weights(L.record_name + ".norm_sum", std::move(n.summed), p0);
  }
  if (sink && sink->wants_mixing()) {
    // Value zeroing: each new query row re-runs its MLP half once for every cached key it sees
    // (T*(T+1)/2 rows for a prefill of T tokens, Nk rows for one generation step).
    Mat xn, up, gate, proj;
    const nn::BlockRest rest = [&](const Mat& s, Mat& y) {
      y = s;
      mlp_residual(l, y, xn, up, gate, proj, threads);
    };
    sink->weights(L.record_name + ".mixing", nn::value_zeroing(c.x, c.w[l], 0, {vc, KV, H, Hkv, Dh}, {L.wo, true}, rest), p0);
  }
  if (sink) sink->weights(L.record_name, std::move(c.w[l]), p0);

  mlp_residual(l, c.x, c.xn, c.up, c.gate, c.proj, threads);
}

void LmModel::mlp_residual(int l, Mat& x, Mat& xn, Mat& up, Mat& gate, Mat& proj, int threads) const {
  // MLP block on x [n, D]: llama x += down(silu(gate(xn)) * up(xn)); gpt2 x += down(gelu(up(xn) + b)) + b
  const Layer& L = *layers_[l];
  const int n = static_cast<int>(x.rows()), D = cfg_.dim, F = cfg_.ffn;
  const bool llama = cfg_.arch == LmArch::Llama;
  if (llama) nn::rms_norm_rows(x, L.ffn_norm->data(), cfg_.norm_eps, xn);
  else nn::layer_norm_rows(x, L.ffn_norm->data(), L.ffn_norm_b->data(), cfg_.norm_eps, xn);
  ensure(up, n, F);
  ensure(proj, n, D);
  nn::linear_rows(xn, *L.up, L.bup, up.data(), F, threads);
  if (llama) {
    ensure(gate, n, F);
    nn::linear_rows(xn, *L.gate, nullptr, gate.data(), F, threads);
    nn::swiglu_inplace(gate, up);
    nn::linear_rows(gate, *L.down, L.bdown, proj.data(), D, threads);
  } else {
    nn::gelu_tanh_inplace(up);
    nn::linear_rows(up, *L.down, L.bdown, proj.data(), D, threads);
  }
  x.noalias() += proj;
}

const Mat& LmModel::forward(const std::vector<int>& ids, LmCache& c, AttentionSink* sink,
                            const LmForwardOptions& opt) const {
  const int T = static_cast<int>(ids.size()), D = cfg_.dim, V = cfg_.vocab;
  if (T == 0) throw UsageError("forward: no tokens");
  if (c.k.size() != static_cast<size_t>(cfg_.layers)) throw UsageError("forward: cache made for another model");
  if (c.length + T > c.capacity)
    throw UsageError(fmt::format("{} tokens after {} exceed the KV cache of {} positions", T, c.length, c.capacity));
  for (int id : ids)
    if (id < 0 || id >= V) throw InputError("", fmt::format("token id {} outside the vocabulary of {}", id, V));
  const int threads = opt.threads > 0 ? opt.threads : nn::threads();

  // Several new tokens after cached ones: run them one at a time (the prefill kernel's causal mask
  // starts at position 0).
  if (c.length > 0 && T > 1) {
    if (opt.block_outputs) throw UsageError("forward: block outputs need a prefill from an empty cache");
    if (opt.all_logits) {
      Mat all(T, V);
      for (int t = 0; t < T; ++t) all.row(t) = forward({ids[t]}, c, sink, {false, nullptr, threads});
      c.logits = std::move(all);
      return c.logits;
    }
    for (int t = 0; t < T; ++t) forward({ids[t]}, c, sink, {false, nullptr, threads});
    return c.logits;
  }

  const int p0 = c.length;
  ensure(c.x, T, D);
  for (int t = 0; t < T; ++t) {
    c.x.row(t) = tok_->row(ids[t]);
    if (pos_) c.x.row(t) += pos_->row(p0 + t);
  }
  if (opt.block_outputs) opt.block_outputs->clear();
  for (int l = 0; l < cfg_.layers; ++l) {
    layer_forward(l, T, p0, c, sink, threads);
    if (opt.block_outputs) opt.block_outputs->push_back(c.x);
  }
  c.length = p0 + T;

  // Final norm and logits: every row, or the last only (what generation needs).
  const int rows = opt.all_logits ? T : 1;
  ensure(c.proj, rows, D);
  if (rows != T) c.proj = c.x.bottomRows(1);
  const Mat& xin = rows == T ? c.x : c.proj;
  if (cfg_.arch == LmArch::Llama) nn::rms_norm_rows(xin, out_norm_->data(), cfg_.norm_eps, c.xn);
  else nn::layer_norm_rows(xin, out_norm_->data(), out_norm_b_->data(), cfg_.norm_eps, c.xn);
  ensure(c.logits, rows, V);
  nn::linear_rows(c.xn, *output_, nullptr, c.logits.data(), V, threads);
  return c.logits;
}

double LmModel::matmul_flops(int T, int past, bool all_logits) const {
  const double D = cfg_.dim, Q = static_cast<double>(cfg_.heads) * cfg_.head_dim,
               KV = static_cast<double>(cfg_.kv_heads) * cfg_.head_dim, F = cfg_.ffn, V = cfg_.vocab;
  const double mlp = cfg_.arch == LmArch::Llama ? 3 * D * F : 2 * D * F;
  const double proj = D * Q + 2 * D * KV + Q * D + mlp;   // per token, multiply-adds
  // Causal attention: query t sees past + t + 1 keys; QK^T and PV each Dh per (head, key).
  double keys = 0;
  if (T == 1) keys = past + 1;
  else keys = static_cast<double>(T) * (T + 1) / 2.0;
  const double attn = 2.0 * cfg_.heads * cfg_.head_dim * keys;
  const double logits = (all_logits ? T : 1) * D * V;
  return 2.0 * (cfg_.layers * (T * proj + attn) + logits);
}

// ---------------------------------------------------------------------------------------------
int sample_token(const float* logits, int V, const SamplerOptions& opt, nn::Rng& rng,
                 std::vector<std::pair<float, int>>& scratch) {
  if (V <= 0) throw UsageError("sample: empty vocabulary");
  if (!(opt.temperature > 0.f)) {
    int best = 0;
    for (int i = 1; i < V; ++i)
      if (logits[i] > logits[best]) best = i;   // first maximum, as llama2.c's argmax
    return best;
  }
  scratch.resize(V);
  for (int i = 0; i < V; ++i) scratch[i] = {logits[i], i};
  int n = V;
  // Larger logit first; equal logits by id, so the order (and the draw) is deterministic.
  auto before = [](const std::pair<float, int>& a, const std::pair<float, int>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  if (opt.top_k > 0 && opt.top_k < V) {
    std::nth_element(scratch.begin(), scratch.begin() + opt.top_k, scratch.end(), before);
    n = opt.top_k;
  }
  std::sort(scratch.begin(), scratch.begin() + n, before);
  const float m = scratch[0].first;
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += (scratch[i].first = std::exp((scratch[i].first - m) / opt.temperature));
  const double r = rng.uniform() * sum;
  double acc = 0;
  for (int i = 0; i < n; ++i) {
    acc += scratch[i].first;
    if (r < acc) return scratch[i].second;
  }
  return scratch[n - 1].second;
}

}  // namespace attnviz::models
