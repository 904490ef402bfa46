// The MNIST vision transformer: pre-LN blocks over [B*T, D] rows with a small-T self-attention
// that keeps its weights (for recording and backward) and their gradients (for grad-rollout).
#include <attnviz/error.hpp>
#include <attnviz/models/vit.hpp>
#include <attnviz/engine/ops.hpp>

#include <cmath>

namespace attnviz::models {

using nn::Rng;

// ---- self-attention ------------------------------------------------------------------------
Mat VitSelfAttention::forward(const Mat& qkv, int b_, int t_, int h_) {
  // qkv: [B*T, 3D] (columns q | k | v, head h at h*Dh within each) -> ctx [B*T, D]
  B = b_, T = t_, H = h_;
  D = static_cast<int>(qkv.cols() / 3);
  const int Dh = D / H;
  const float scale = 1.f / std::sqrt(static_cast<float>(Dh));
  qkv_ = qkv;
  w_.resize(static_cast<size_t>(B) * H * T * T);
  Mat ctx(static_cast<Eigen::Index>(B) * T, D);
  const bool perturbed = !perturb.empty();
#pragma omp parallel for schedule(static)
  for (int bh = 0; bh < B * H; ++bh) {
    const int b = bh / H, h = bh % H;
    auto q = qkv_.block(b * T, h * Dh, T, Dh);          // [T, Dh]
    auto k = qkv_.block(b * T, D + h * Dh, T, Dh);      // [T, Dh]
    auto v = qkv_.block(b * T, 2 * D + h * Dh, T, Dh);  // [T, Dh]
    MatMap a(w_.data() + static_cast<size_t>(bh) * T * T, T, T);  // [T, T]
    a.noalias() = (q * k.transpose()) * scale;
    for (int i = 0; i < T; ++i) {
      float mx = a.row(i).maxCoeff();
      a.row(i) = (a.row(i).array() - mx).exp();
      a.row(i) /= a.row(i).sum();
    }
    if (perturbed) {
      Mat ap = a + ConstMatMap(perturb.data() + static_cast<size_t>(bh) * T * T, T, T);
      ctx.block(b * T, h * Dh, T, Dh).noalias() = ap * v;
    } else {
      ctx.block(b * T, h * Dh, T, Dh).noalias() = a * v;
    }
  }
  return ctx;
}

Mat VitSelfAttention::backward(const Mat& dctx) {
  // dctx: [B*T, D] -> dqkv [B*T, 3D]; dw_ = d/d(weights) [B, H, T, T]
  const int Dh = D / H;
  const float scale = 1.f / std::sqrt(static_cast<float>(Dh));
  Mat dqkv(static_cast<Eigen::Index>(B) * T, 3 * D);
  dw_.resize(w_.size());
#pragma omp parallel for schedule(static)
  for (int bh = 0; bh < B * H; ++bh) {
    const int b = bh / H, h = bh % H;
    auto q = qkv_.block(b * T, h * Dh, T, Dh);
    auto k = qkv_.block(b * T, D + h * Dh, T, Dh);
    auto v = qkv_.block(b * T, 2 * D + h * Dh, T, Dh);
    auto dc = dctx.block(b * T, h * Dh, T, Dh);            // [T, Dh]
    ConstMatMap a(w_.data() + static_cast<size_t>(bh) * T * T, T, T);
    MatMap da(dw_.data() + static_cast<size_t>(bh) * T * T, T, T);
    // ctx = A v  =>  dA = dctx v^T, dv = A^T dctx
    da.noalias() = dc * v.transpose();
    dqkv.block(b * T, 2 * D + h * Dh, T, Dh).noalias() = a.transpose() * dc;
    // A = softmax(S) row-wise  =>  dS = A * (dA - rowsum(dA * A))
    Mat ds = a.cwiseProduct(da);                            // [T, T]
    Vec rs = ds.rowwise().sum();
    ds -= a.cwiseProduct(rs.replicate(1, T));
    ds *= scale;
    // S = q k^T * scale  =>  dq = dS k, dk = dS^T q
    dqkv.block(b * T, h * Dh, T, Dh).noalias() = ds * k;
    dqkv.block(b * T, D + h * Dh, T, Dh).noalias() = ds.transpose() * q;
  }
  return dqkv;
}

// ---- encoder block -------------------------------------------------------------------------
VitBlock::VitBlock(int dim, int h, int mlp)
    : ln1(dim), ln2(dim), qkv(dim, 3 * dim), out(dim, dim), fc1(dim, mlp), fc2(mlp, dim), heads(h) {}

void VitBlock::init(Rng& rng) {
  qkv.init(rng);
  out.init(rng);
  fc1.init(rng);
  fc2.init(rng);
}

void VitBlock::collect(nn::ParamSet& set, const std::string& p) {
  ln1.collect(set, p + ".ln1");
  qkv.collect(set, p + ".attn.qkv");
  out.collect(set, p + ".attn.out");
  ln2.collect(set, p + ".ln2");
  fc1.collect(set, p + ".mlp.fc1");
  fc2.collect(set, p + ".mlp.fc2");
}

Mat VitBlock::forward(const Mat& x, int B, int T) {
  // h = x + Out(Attn(QKV(LN1(x))));  y = h + FC2(GELU(FC1(LN2(h))))      x: [B*T, D]
  Mat h = x + out.forward(attn.forward(qkv.forward(ln1.forward(x)), B, T, heads));
  return h + fc2.forward(gelu.forward(fc1.forward(ln2.forward(h))));
}

Mat VitBlock::backward(const Mat& dy) {
  // MLP branch and its residual
  Mat dh = dy + ln2.backward(fc1.backward(gelu.backward(fc2.backward(dy))));
  // attention branch and its residual
  return dh + ln1.backward(qkv.backward(attn.backward(out.backward(dh))));
}

// ---- model ---------------------------------------------------------------------------------
VitModel::VitModel(const MnistConfig& cfg, std::uint64_t seed) : MnistModel(cfg) {
  nn::PatchEmbeddingOptions po;
  po.height = po.width = cfg.image;
  po.patch = cfg.patch;
  po.dim = cfg.dim;
  po.cls_token = true;
  po.positions = true;
  embed = nn::PatchEmbedding(po);
  for (int l = 0; l < cfg.depth; ++l) blocks.emplace_back(cfg.dim, cfg.heads, cfg.mlp);
  norm = nn::LayerNorm(cfg.dim);
  head = nn::Linear(cfg.dim, cfg.classes);
  Rng rng(seed);
  embed.init(rng);
  for (auto& b : blocks) b.init(rng);
  head.init(rng);
  embed.collect(params_, "embed");
  for (int l = 0; l < cfg.depth; ++l) blocks[l].collect(params_, "vit.layer" + std::to_string(l));
  norm.collect(params_, "norm");
  head.collect(params_, "head");
}

namespace {
// Layer l's weights (or their gradients) for all B samples, as the sink takes them: [B, H, T, T].
nn::AttentionWeights all_weights(const VitSelfAttention& a, bool grads) {
  nn::AttentionWeights w;
  w.resize(a.B, a.H, a.T, a.T);
  const VitSelfAttention::Buffer& src = grads ? a.dw_ : a.w_;
  std::copy(src.begin(), src.begin() + static_cast<long>(w.data.size()), w.data.begin());
  return w;
}
}  // namespace

Mat VitModel::forward(const Mat& images, AttentionSink* sink) {
  // images: [B, image*image] -> logits [B, classes]
  B_ = static_cast<int>(images.rows());
  const int T = cfg_.tokens();
  Mat x = embed.forward(images);  // [B*T, D]
  for (size_t l = 0; l < blocks.size(); ++l) {
    x = blocks[l].forward(x, B_, T);
    if (sink) sink->weights("vit.layer" + std::to_string(l) + ".self", all_weights(blocks[l].attn, false));
  }
  Mat z(B_, cfg_.dim);            // CLS rows [B, D]
  for (int b = 0; b < B_; ++b) z.row(b) = x.row(static_cast<Eigen::Index>(b) * T);
  return head.forward(norm.forward(z));
}

void VitModel::backward(const Mat& dlogits, AttentionSink* sink) {
  const int T = cfg_.tokens();
  Mat dz = norm.backward(head.backward(dlogits));  // [B, D]
  Mat dx = Mat::Zero(static_cast<Eigen::Index>(B_) * T, cfg_.dim);
  for (int b = 0; b < B_; ++b) dx.row(static_cast<Eigen::Index>(b) * T) = dz.row(b);
  for (int l = cfg_.depth - 1; l >= 0; --l) dx = blocks[l].backward(dx);
  embed.backward(dx);
  if (sink && sink->wants_gradients())
    for (size_t l = 0; l < blocks.size(); ++l)
      sink->gradients("vit.layer" + std::to_string(l) + ".self", all_weights(blocks[l].attn, true));
}

namespace {
std::vector<AttentionTensor> tensors_of(const std::vector<VitBlock>& blocks, int b, bool grads) {
  std::vector<AttentionTensor> out;
  for (size_t l = 0; l < blocks.size(); ++l) {
    const VitSelfAttention& a = blocks[l].attn;
    const VitSelfAttention::Buffer& src = grads ? a.dw_ : a.w_;
    if (src.size() != static_cast<size_t>(a.B) * a.H * a.T * a.T || b < 0 || b >= a.B) return {};
    AttentionTensor t("vit.layer" + std::to_string(l) + ".self", a.H, a.T, a.T, "tokens", "tokens");
    const size_t n = static_cast<size_t>(a.H) * a.T * a.T;
    std::copy(src.begin() + static_cast<long>(b * n), src.begin() + static_cast<long>((b + 1) * n), t.data.begin());
    out.push_back(std::move(t));
  }
  return out;
}
}  // namespace

std::vector<AttentionTensor> VitModel::attention(int b) const { return tensors_of(blocks, b, false); }
std::vector<AttentionTensor> VitModel::attention_grads(int b) const { return tensors_of(blocks, b, true); }

}  // namespace attnviz::models
