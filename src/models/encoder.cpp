// Transformer encoders (BERT family post-LN, ViT pre-LN): config, tensor table, forward pass on the
// engine's kernels (linear_rows, layer_norm_rows, attention_blocked) with an optional sink.
#include <attnviz/models/encoder.hpp>

#include <attnviz/engine/attention.hpp>
#include <attnviz/engine/context_mixing.hpp>
#include <attnviz/engine/lm_ops.hpp>
#include <attnviz/engine/norm_attention.hpp>
#include <attnviz/engine/ops.hpp>
#include <attnviz/engine/rng.hpp>
#include <attnviz/error.hpp>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <cmath>

namespace attnviz::models {

const char* encoder_family_name(EncoderFamily f) {
  switch (f) {
    case EncoderFamily::Bert: return "bert";
    case EncoderFamily::Roberta: return "roberta";
    case EncoderFamily::DistilBert: return "distilbert";
    case EncoderFamily::Vit: return "vit";
  }
  return "?";
}

void EncoderConfig::validate(const std::string& path) const {
  auto bad = [&](const std::string& what) { throw InputError(path, "encoder config: " + what); };
  if (layers <= 0 || dim <= 0 || heads <= 0 || ffn <= 0 || positions <= 0)
    bad(fmt::format("sizes must be positive (layers {}, dim {}, heads {}, ffn {}, positions {})", layers, dim, heads, ffn, positions));
  if (layers > 1024 || dim > (1 << 15) || heads > 1024 || ffn > (1 << 17) || positions > (1 << 16) || vocab > (1 << 22) ||
      type_vocab > 1024 || labels > (1 << 20))
    bad("sizes beyond the supported range");
  if (dim % heads != 0) bad(fmt::format("hidden size {} is not a multiple of {} heads", dim, heads));
  if (!(norm_eps > 0) || !std::isfinite(norm_eps)) bad("layer norm epsilon must be positive");
  if (family == EncoderFamily::Vit) {
    if (patch_size <= 0 || image_size <= 0 || image_size % patch_size != 0 || channels <= 0 || channels > 4)
      bad(fmt::format("image_size {} must be a positive multiple of patch_size {} (channels {})", image_size, patch_size, channels));
    if (image_size > 4096) bad("image_size beyond the supported range");
    if (grid() * grid() + 1 != positions)
      bad(fmt::format("{} position embeddings for {} patches + CLS", positions, grid() * grid()));
    if (labels <= 0) bad("a ViT classifier needs at least one label");
  } else {
    if (vocab <= 0) bad("vocab_size must be positive");
    if (labels < 0) bad("a classification head needs at least one label");
    if (position_offset < 0 || position_offset >= positions) bad("position offset outside the position table");
  }
}

std::string EncoderConfig::to_json() const {
  nlohmann::ordered_json j;
  j["family"] = encoder_family_name(family);
  j["name"] = name;
  j["layers"] = layers;
  j["dim"] = dim;
  j["heads"] = heads;
  j["ffn"] = ffn;
  j["positions"] = positions;
  j["norm_eps"] = norm_eps;
  j["pre_norm"] = pre_norm;
  j["activation"] = act == EncoderAct::GeluErf ? "gelu" : act == EncoderAct::GeluTanh ? "gelu_tanh" : "relu";
  if (family == EncoderFamily::Vit) {
    j["image_size"] = image_size;
    j["patch_size"] = patch_size;
    j["channels"] = channels;
    j["labels"] = labels;
  } else {
    j["vocab"] = vocab;
    j["type_vocab"] = type_vocab;
    j["position_offset"] = position_offset;
    if (labels > 0) {
      j["labels"] = labels;
      j["head_activation"] = head_relu ? "relu" : "tanh";
    }
  }
  return j.dump();
}

std::vector<EncoderTensorSpec> encoder_tensor_table(const EncoderConfig& c) {
  std::vector<EncoderTensorSpec> t;
  const std::int64_t D = c.dim, F = c.ffn;
  auto add = [&](std::string n, std::vector<std::int64_t> s) { t.push_back({std::move(n), std::move(s)}); };
  if (c.family == EncoderFamily::Vit) {
    add("embeddings.patch.weight", {D, static_cast<std::int64_t>(c.channels) * c.patch_size * c.patch_size});
    add("embeddings.patch.bias", {D});
    add("embeddings.cls", {D});
    add("embeddings.position", {c.positions, D});
  } else {
    add("embeddings.word", {c.vocab, D});
    add("embeddings.position", {c.positions, D});
    if (c.type_vocab > 0) add("embeddings.token_type", {c.type_vocab, D});
    add("embeddings.norm.weight", {D});
    add("embeddings.norm.bias", {D});
  }
  for (int l = 0; l < c.layers; ++l) {
    const std::string b = "layer" + std::to_string(l) + ".";
    for (const char* m : {"q", "k", "v", "out"}) {
      add(b + "attn." + m + ".weight", {D, D});
      add(b + "attn." + m + ".bias", {D});
    }
    add(b + "attn_norm.weight", {D});
    add(b + "attn_norm.bias", {D});
    add(b + "ffn.up.weight", {F, D});
    add(b + "ffn.up.bias", {F});
    add(b + "ffn.down.weight", {D, F});
    add(b + "ffn.down.bias", {D});
    add(b + "ffn_norm.weight", {D});
    add(b + "ffn_norm.bias", {D});
  }
  if (c.family == EncoderFamily::Vit) {
    add("final_norm.weight", {D});
    add("final_norm.bias", {D});
  } else if (c.labels > 0) {
    add("pooler.weight", {D, D});
    add("pooler.bias", {D});
  }
  if (c.labels > 0) {
    add("classifier.weight", {c.labels, D});
    add("classifier.bias", {c.labels});
  }
  return t;
}

EncoderModel::EncoderModel(const EncoderConfig& cfg) : cfg_(cfg) {
  cfg_.validate();
  for (const auto& s : encoder_tensor_table(cfg_)) {
    auto p = std::make_unique<nn::Param>();
    p->value = s.shape.size() == 1 ? Mat::Zero(1, s.shape[0]) : Mat::Zero(s.shape[0], s.shape[1]);
    params_.add(*p, s.name);
    owned_.push_back(std::move(p));
  }
}

Mat& EncoderModel::weight(const std::string& name) {
  nn::Param* p = params_.find(name);
  if (!p) throw std::out_of_range("EncoderModel: no tensor " + name);
  return p->value;
}
const Mat& EncoderModel::weight(const std::string& name) const { return const_cast<EncoderModel*>(this)->weight(name); }

void EncoderModel::init_random(std::uint64_t seed, float stddev) {
  nn::Rng rng(seed);
  for (nn::Param* p : params_.params()) {
    const bool norm = p->name.find("norm.") != std::string::npos;
    const bool bias = p->name.size() > 5 && p->name.compare(p->name.size() - 5, 5, ".bias") == 0;
    if (norm && !bias) p->value.setOnes();
    else if (bias) p->value.setZero();
    else
      for (Eigen::Index i = 0; i < p->value.size(); ++i) p->value.data()[i] = rng.normal(0.f, stddev);
  }
}

void EncoderModel::layers_forward(Mat& x, const std::string& stack, AttentionSink* sink, const EncoderForwardOptions& opt) const {
  // x: [T, D] -> [T, D]. Post-LN (BERT): x = LN(x + Attn(x)); x = LN(x + FFN(x)).
  // Pre-LN (ViT): x = x + Attn(LN(x)); x = x + FFN(LN(x)).
  const int T = static_cast<int>(x.rows()), D = cfg_.dim, H = cfg_.heads, Dh = D / H, F = cfg_.ffn;
  const int threads = opt.threads > 0 ? opt.threads : nn::threads();
  const float eps = cfg_.norm_eps;
  Mat h(T, D), qkv(T, 3 * D), att(T, D), proj(T, D), up(T, F);
  std::vector<double> gram;   // norm-based attention: [T, H, H] Gram matrices of the transformed values
  if (opt.layer_outputs) opt.layer_outputs->clear();
  for (int l = 0; l < cfg_.layers; ++l) {
    const std::string b = "layer" + std::to_string(l) + ".";
    auto W = [&](const char* n) -> const Mat& { return weight(b + n); };
    const Mat* in = &x;
    if (cfg_.pre_norm) {
      nn::layer_norm_rows(x, W("attn_norm.weight").data(), W("attn_norm.bias").data(), eps, h);
      in = &h;
    }
    // q | k | v side by side in one [T, 3D] buffer; the kernel reads heads with strides.
    nn::linear_rows(*in, W("attn.q.weight"), &W("attn.q.bias"), qkv.data(), 3 * D, threads);
    nn::linear_rows(*in, W("attn.k.weight"), &W("attn.k.bias"), qkv.data() + D, 3 * D, threads);
    nn::linear_rows(*in, W("attn.v.weight"), &W("attn.v.bias"), qkv.data() + 2 * D, 3 * D, threads);
    nn::AttentionWeights w;
    nn::KernelShape ks;
    ks.B = 1; ks.H = H; ks.Nq = T; ks.Nk = T; ks.Dh = Dh;
    ks.ldq = 3 * D; ks.ldk = 3 * D; ks.ldv = 3 * D; ks.ldo = D;
    nn::KernelOptions ko;
    ko.scale = 1.f / std::sqrt(static_cast<float>(Dh));
    ko.threads = threads;
    if (sink) {
      w.resize(1, H, T, T);
      ko.weights = w.data.data();
    }
    nn::attention_blocked(qkv.data(), qkv.data() + D, qkv.data() + 2 * D, att.data(), ks, ko);
    const std::string name = stack + ".layer" + std::to_string(l) + ".self";
    if (sink && sink->wants_norms()) {   // norm-based attention from v (columns 2D.. of qkv) and W_O [D, D] (out, in)
      gram.resize(static_cast<size_t>(T) * H * H);
      nn::value_gram({qkv.data() + 2 * D, 3 * D, H, H, Dh}, {&W("attn.out.weight"), true}, 0, T, gram.data());
      nn::NormAttention n;
      n.per_head.resize(1, H, T, T);
      n.summed.resize(1, 1, T, T);
      nn::norm_attention_from_gram(gram.data(), w, 0, n);
      sink->weights(name + ".norm", std::move(n.per_head));
      sink->weights(name + ".norm_sum", std::move(n.summed));
    }
    nn::linear_rows(att, W("attn.out.weight"), &W("attn.out.bias"), proj.data(), D, threads);
    x.noalias() += proj;   // the residual sums s the block's rest starts from
    if (sink && sink->wants_mixing()) {
      // Value zeroing: every (query, key) pair re-runs the block's rest on one row (T^2 rows).
      Mat hz, upz, projz;
      const nn::BlockRest rest = [&](const Mat& s, Mat& y) {
        y = s;
        block_rest(l, y, hz, upz, projz, threads);
      };
      sink->weights(name + ".mixing", nn::value_zeroing(x, w, 0, {qkv.data() + 2 * D, 3 * D, H, H, Dh},
                                                        {&W("attn.out.weight"), true}, rest));
    }
    if (sink) sink->weights(name, std::move(w));
    block_rest(l, x, h, up, proj, threads);
    if (opt.layer_outputs) opt.layer_outputs->push_back(x);
  }
}

void EncoderModel::block_rest(int l, Mat& x, Mat& h, Mat& up, Mat& proj, int threads) const {
  // x: the residual sums s = x + Attn(.) [n, D] -> the block's output, in place.
  // Post-LN (BERT): x = LN1(s); x = LN2(x + FFN(x)). Pre-LN (ViT): x = s + FFN(LN2(s)).
  const std::string b = "layer" + std::to_string(l) + ".";
  auto W = [&](const char* n) -> const Mat& { return weight(b + n); };
  const int n = static_cast<int>(x.rows()), D = cfg_.dim, F = cfg_.ffn;
  const float eps = cfg_.norm_eps;
  if (!cfg_.pre_norm) nn::layer_norm_rows(x, W("attn_norm.weight").data(), W("attn_norm.bias").data(), eps, x);
  const Mat* in = &x;
  if (cfg_.pre_norm) {
    nn::layer_norm_rows(x, W("ffn_norm.weight").data(), W("ffn_norm.bias").data(), eps, h);
    in = &h;
  }
  if (up.rows() != n || up.cols() != F) up.resize(n, F);
  if (proj.rows() != n || proj.cols() != D) proj.resize(n, D);
  nn::linear_rows(*in, W("ffn.up.weight"), &W("ffn.up.bias"), up.data(), F, threads);
  if (cfg_.act == EncoderAct::GeluErf) nn::gelu_erf_inplace(up);
  else if (cfg_.act == EncoderAct::GeluTanh) nn::gelu_tanh_inplace(up);
  else up = up.cwiseMax(0.f);
  nn::linear_rows(up, W("ffn.down.weight"), &W("ffn.down.bias"), proj.data(), D, threads);
  x.noalias() += proj;
  if (!cfg_.pre_norm) nn::layer_norm_rows(x, W("ffn_norm.weight").data(), W("ffn_norm.bias").data(), eps, x);
}

Mat EncoderModel::forward_tokens(const std::vector<int>& ids, const std::vector<int>& type_ids, AttentionSink* sink,
                                 const EncoderForwardOptions& opt) const {
  Mat x = embed_tokens(ids, type_ids);
  layers_forward(x, "encoder", sink, opt);
  return x;
}

Mat EncoderModel::embed_tokens(const std::vector<int>& ids, const std::vector<int>& type_ids) const {
  if (cfg_.family == EncoderFamily::Vit) throw UsageError("a ViT takes an image, not tokens");
  const int T = static_cast<int>(ids.size()), D = cfg_.dim;
  if (T == 0) throw UsageError("encoder: no tokens");
  if (cfg_.position_offset + T > cfg_.positions)
    throw UsageError(fmt::format("{} tokens exceed the model's {} positions", T, cfg_.positions - cfg_.position_offset));
  if (!type_ids.empty() && type_ids.size() != ids.size()) throw UsageError("encoder: type ids and ids differ in length");
  const Mat& word = weight("embeddings.word");
  const Mat& pos = weight("embeddings.position");
  const Mat* type = cfg_.type_vocab > 0 ? &weight("embeddings.token_type") : nullptr;
  Mat x(T, D);   // [T, D] = word + position (+ token type), then LayerNorm
  for (int t = 0; t < T; ++t) {
    if (ids[t] < 0 || ids[t] >= cfg_.vocab)
      throw InputError("", fmt::format("token id {} outside the vocabulary of {}", ids[t], cfg_.vocab));
    x.row(t) = word.row(ids[t]) + pos.row(cfg_.position_offset + t);
    if (type) {
      const int ty = type_ids.empty() ? 0 : type_ids[t];
      if (ty < 0 || ty >= cfg_.type_vocab)
        throw InputError("", fmt::format("token type {} outside the {} types", ty, cfg_.type_vocab));
      x.row(t) += type->row(ty);
    }
  }
  nn::layer_norm_rows(x, weight("embeddings.norm.weight").data(), weight("embeddings.norm.bias").data(), cfg_.norm_eps, x);
  return x;
}

Mat EncoderModel::embed_image(const std::vector<float>& px, int threads) const {
  if (cfg_.family != EncoderFamily::Vit) throw UsageError("a text encoder takes tokens, not an image");
  const int C = cfg_.channels, S = cfg_.image_size, p = cfg_.patch_size, G = cfg_.grid(), P = G * G, D = cfg_.dim;
  if (px.size() != static_cast<size_t>(C) * S * S)
    throw UsageError(fmt::format("image of {} values, expected {}x{}x{}", px.size(), C, S, S));
  // Patches as rows [P, C*p*p] in Conv2d weight order (channel, row, column): the patch embedding
  // (a stride-p convolution) is then one product with the flattened kernel.
  Mat patches(P, C * p * p);
  for (int gy = 0; gy < G; ++gy)
    for (int gx = 0; gx < G; ++gx)
      for (int c = 0; c < C; ++c)
        for (int y = 0; y < p; ++y)
          for (int xx = 0; xx < p; ++xx)
            patches(gy * G + gx, (c * p + y) * p + xx) = px[(static_cast<size_t>(c) * S + gy * p + y) * S + gx * p + xx];
  Mat x(1 + P, D);   // [CLS; patches] + positions
  x.row(0) = weight("embeddings.cls");
  nn::linear_rows(patches, weight("embeddings.patch.weight"), &weight("embeddings.patch.bias"), x.data() + D, D,
                  threads > 0 ? threads : nn::threads());
  x += weight("embeddings.position");
  return x;
}

Mat EncoderModel::forward_image(const std::vector<float>& px, AttentionSink* sink, const EncoderForwardOptions& opt,
                                Mat* hidden) const {
  const int D = cfg_.dim;
  const int threads = opt.threads > 0 ? opt.threads : nn::threads();
  Mat x = embed_image(px, threads);
  layers_forward(x, "vit", sink, opt);
  if (hidden) *hidden = x;
  Mat cls(1, D);
  nn::layer_norm_rows(x.topRows(1), weight("final_norm.weight").data(), weight("final_norm.bias").data(), cfg_.norm_eps, cls);
  Mat logits(1, cfg_.labels);
  nn::linear_rows(cls, weight("classifier.weight"), &weight("classifier.bias"), logits.data(), cfg_.labels, threads);
  return logits;
}

}  // namespace attnviz::models
