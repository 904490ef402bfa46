// The MNIST vision transformer on the engine's pre-LN encoder blocks, and the upgrade of files
// written before it moved onto them (packed q|k|v projection).
#include <attnviz/engine/relevance.hpp>
#include <attnviz/error.hpp>
#include <attnviz/models/vit.hpp>

#include "models/attention_extras.hpp"

#include <fmt/core.h>

#include <cctype>
#include <stdexcept>

namespace attnviz::models {

VitModel::VitModel(const MnistConfig& cfg, std::uint64_t seed) : MnistModel(cfg) {
  nn::PatchEmbeddingOptions po;
  po.height = po.width = cfg.image;
  po.patch = cfg.patch;
  po.dim = cfg.dim;
  po.cls_token = true;
  po.positions = true;
  embed = nn::PatchEmbedding(po);
  nn::EncoderBlockOptions bo;
  bo.dim = cfg.dim;
  bo.heads = cfg.heads;
  bo.mlp_hidden = cfg.mlp;
  bo.dense_max_keys = 64;   // T = 50 at the defaults: the dense path trains faster (README, MNIST)
  for (int l = 0; l < cfg.depth; ++l) blocks.emplace_back(bo);
  norm = nn::LayerNorm(cfg.dim);
  head = nn::Linear(cfg.dim, cfg.classes);
  nn::Rng rng(seed);
  embed.init(rng);
  for (auto& b : blocks) {
    // The same draws as the earlier packed projection: one Xavier-uniform [D, 3D] matrix split into
    // wq | wk | wv (bound sqrt(6 / 4D), not the sqrt(6 / 2D) of three separate [D, D] inits), so a
    // seed trains the same model as before the ViT moved onto the engine's blocks.
    nn::Linear qkv(cfg.dim, 3 * cfg.dim);
    qkv.init(rng);
    b.attn.wq.weight.value = qkv.weight.value.leftCols(cfg.dim);
    b.attn.wk.weight.value = qkv.weight.value.middleCols(cfg.dim, cfg.dim);
    b.attn.wv.weight.value = qkv.weight.value.rightCols(cfg.dim);
    b.attn.wo.init(rng);
    b.fc1.init(rng);
    b.fc2.init(rng);
  }
  head.init(rng);
  embed.collect(params_, "embed");
  for (int l = 0; l < cfg.depth; ++l) blocks[l].collect(params_, "vit.layer" + std::to_string(l));
  norm.collect(params_, "norm");
  head.collect(params_, "head");
}

namespace {
std::string layer_name(size_t l) { return "vit.layer" + std::to_string(l) + ".self"; }
}  // namespace

Mat VitModel::forward(const Mat& images, AttentionSink* sink) {
  // images: [B, image*image] -> logits [B, classes]
  B_ = static_cast<int>(images.rows());
  const int T = cfg_.tokens();
  w_.assign(sink ? blocks.size() : 0, {});
  extra_.assign(sink ? blocks.size() : 0, {});
  dw_.clear();
  rel_.clear();
  xs_.clear();
  Mat x = embed.forward(images);  // [B*T, D]
  // Only the CLS rows of the last block reach the logits: in training (logits_only, no sink) that
  // block runs its query, attention output and MLP on those B rows alone (forward_row).
  row_only_ = logits_only && !sink && !blocks.empty();
  if (row_only_) {
    for (size_t l = 0; l + 1 < blocks.size(); ++l) x = blocks[l].forward(x, B_, T);
    return head.forward(norm.forward(blocks.back().forward_row(x, B_, T, 0)));
  }
  for (size_t l = 0; l < blocks.size(); ++l) {
    Mat in = sink && sink->wants_mixing() ? x : Mat();   // value zeroing reruns the block's second half from it
    if (sink) xs_.push_back(x);   // what relevance() needs besides the blocks' own caches
    x = blocks[l].forward(x, B_, T, {}, sink ? &w_[l] : nullptr);
    if (!sink) continue;
    sink->weights(layer_name(l), nn::AttentionWeights(w_[l]));
    encoder_block_extras(blocks[l], in, w_[l], layer_name(l), *sink, &extra_[l]);
  }
  Mat z(B_, cfg_.dim);            // CLS rows [B, D]
  for (int b = 0; b < B_; ++b) z.row(b) = x.row(static_cast<Eigen::Index>(b) * T);
  return head.forward(norm.forward(z));
}

void VitModel::backward(const Mat& dlogits, AttentionSink* sink) {
  // dlogits: [B, classes]
  const int T = cfg_.tokens();
  const bool grads = sink && sink->wants_gradients();
  dw_.assign(grads ? blocks.size() : 0, {});
  Mat dz = norm.backward(head.backward(dlogits));  // [B, D]
  if (row_only_) {
    if (grads) throw std::logic_error("VitModel::backward: attention gradients need a forward with a sink");
    Mat dx = blocks.back().backward_row(dz);
    for (int l = cfg_.depth - 2; l >= 0; --l) dx = blocks[l].backward(dx);
    embed.backward(dx);
    return;
  }
  Mat dx = Mat::Zero(static_cast<Eigen::Index>(B_) * T, cfg_.dim);
  for (int b = 0; b < B_; ++b) dx.row(static_cast<Eigen::Index>(b) * T) = dz.row(b);
  for (int l = cfg_.depth - 1; l >= 0; --l) dx = blocks[l].backward(dx, grads ? &dw_[l] : nullptr);
  embed.backward(dx);
  if (grads)
    for (size_t l = 0; l < blocks.size(); ++l) sink->gradients(layer_name(l), nn::AttentionWeights(dw_[l]));
}

Mat VitModel::relevance(const Mat& R) {
  // R: [B, classes] -> relevance of the token embeddings [B*T, D]
  const int T = cfg_.tokens();
  if (xs_.size() != blocks.size() || w_.size() != blocks.size())
    throw std::logic_error("VitModel::relevance needs a forward pass with an attention sink first");
  if (R.rows() != B_ || R.cols() != cfg_.classes)
    throw std::invalid_argument("VitModel::relevance: R must be [B, classes] of the last forward");
  // logits = head(norm(x_CLS)): the head by alpha = 1, beta = 0; the final LN passes it through;
  // only the CLS rows receive relevance.
  const Mat rz = nn::lrp_linear(head.x_, head.weight.value, R);   // [B, D]
  Mat r = Mat::Zero(static_cast<Eigen::Index>(B_) * T, cfg_.dim);
  for (int b = 0; b < B_; ++b) r.row(static_cast<Eigen::Index>(b) * T) = rz.row(b);
  rel_.assign(blocks.size(), {});
  for (int l = cfg_.depth - 1; l >= 0; --l) r = nn::lrp_encoder_block(blocks[l], xs_[l], w_[l], r, &rel_[l]);
  return r;
}

namespace {
// Each layer's tensor, followed by what was kept beside it (norms, mixing) when given.
std::vector<AttentionTensor> tensors_of(const std::vector<nn::AttentionWeights>& w, int b,
                                        const std::vector<NamedWeights>* extra = nullptr) {
  std::vector<AttentionTensor> out;
  for (size_t l = 0; l < w.size(); ++l) {
    if (b < 0 || b >= w[l].B) return {};
    out.push_back(w[l].tensor(b, layer_name(l), "tokens", "tokens"));
    if (extra && l < extra->size())
      for (const auto& [name, t] : (*extra)[l]) out.push_back(t.tensor(b, name, "tokens", "tokens"));
  }
  if (extra) add_mixing_rollout(out, "vit");
  return out;
}
}  // namespace

std::vector<AttentionTensor> VitModel::attention(int b) const { return tensors_of(w_, b, &extra_); }
std::vector<AttentionTensor> VitModel::attention_grads(int b) const { return tensors_of(dw_, b); }
std::vector<AttentionTensor> VitModel::attention_relevance(int b) const { return tensors_of(rel_, b); }

namespace {
// "<p>vit.layer<l>.<rest>" -> the length of "<p>vit.layer<l>." (0 if the name is not of that form).
size_t layer_prefix(const std::string& name) {
  const size_t at = name.find("vit.layer");
  if (at == std::string::npos) return 0;
  size_t j = at + 9;
  const size_t digits = j;
  while (j < name.size() && std::isdigit(static_cast<unsigned char>(name[j]))) ++j;
  return j > digits && j < name.size() && name[j] == '.' ? j + 1 : 0;
}
bool starts_with(const std::string& s, size_t at, const std::string& what) { return s.compare(at, what.size(), what) == 0; }
}  // namespace

void VitModel::upgrade_vit_tensors(StFile& file) {
  std::vector<StTensor> out;
  out.reserve(file.tensors.size() + 8);
  for (StTensor& t : file.tensors) {
    const size_t p = layer_prefix(t.name);
    const std::string rest = p ? t.name.substr(p) : "";
    if (rest == "attn.qkv.weight" || rest == "attn.qkv.bias") {
      // weight [D, 3D] (bias [3D] or [1, 3D]): columns q | k | v
      const std::int64_t cols = t.shape.empty() ? 0 : t.shape.back();
      const std::int64_t rows = cols > 0 ? t.numel() / cols : 0;
      if (cols <= 0 || cols % 3 || rows * cols != static_cast<std::int64_t>(t.data.size())) {
        out.push_back(std::move(t));   // left as it is: load_parameters names what is missing
        continue;
      }
      const std::int64_t d = cols / 3;
      for (const char* part : {"wq", "wk", "wv"}) {
        const std::int64_t c0 = (part[1] == 'q' ? 0 : part[1] == 'k' ? 1 : 2) * d;
        StTensor s;
        s.name = t.name.substr(0, p) + "attn." + part + rest.substr(8);   // rest.substr(8): ".weight" / ".bias"
        s.dtype = t.dtype;
        s.shape = t.shape;
        s.shape.back() = d;
        s.data.resize(static_cast<size_t>(rows * d));
        for (std::int64_t r = 0; r < rows; ++r)
          std::copy_n(t.data.begin() + r * cols + c0, d, s.data.begin() + r * d);
        out.push_back(std::move(s));
      }
      continue;
    }
    if (p && starts_with(t.name, p, "attn.out."))
      t.name = t.name.substr(0, p) + "attn.wo." + t.name.substr(p + 9);
    else if (p && (starts_with(t.name, p, "mlp.fc1.") || starts_with(t.name, p, "mlp.fc2.")))
      t.name = t.name.substr(0, p) + t.name.substr(p + 4);
    out.push_back(std::move(t));
  }
  file.tensors = std::move(out);
}

}  // namespace attnviz::models
