// Value zeroing (Mohebbi et al. 2023) for the engine's pre-LN encoder block.
#include <attnviz/engine/context_mixing.hpp>
#include <attnviz/engine/norm_attention.hpp>

#include <algorithm>
#include <stdexcept>

namespace attnviz::nn {

namespace {
// The block's MLP half on h [N, D]: h + FC2(act(FC1(LN2(h)))), on copies of the layers (their
// forward caches; the block's own caches stay as its forward left them).
Mat mlp_half(const EncoderBlock& block, const Mat& h) {
  LayerNorm ln2 = block.ln2;
  Linear fc1 = block.fc1, fc2 = block.fc2;
  Mat a = fc1.forward(ln2.forward(h));
  if (block.opt.activation == Activation::Gelu) {
    Gelu g;
    a = g.forward(a);
  } else {
    Relu r;
    a = r.forward(a);
  }
  return h + fc2.forward(a);
}

double cosine(const Eigen::Ref<const Mat>& a, const Eigen::Ref<const Mat>& b) {
  const double na = a.norm(), nb = b.norm();
  return na > 0 && nb > 0 ? static_cast<double>(a.cwiseProduct(b).sum()) / (na * nb) : 1.0;
}
}  // namespace

AttentionWeights value_zeroing(const EncoderBlock& block, const Mat& x, const AttentionWeights& w) {
  // x: [B*T, D]; w: [B, H, T, T]
  const MultiHeadAttention& mha = block.attn;
  const int B = w.B, H = w.H, T = w.Nq, D = block.opt.dim;
  if (mha.B_ != B || mha.Nq_ != T || mha.Nk_ != T || w.Nk != T || H != mha.opt.heads ||
      x.rows() != static_cast<Eigen::Index>(B) * T || x.cols() != D)
    throw std::invalid_argument("value_zeroing: x and the weights are not those of the block's last forward pass");
  // h = x + MHA(LN1(x)) with the attention output rebuilt from the cached context.
  const Mat h = x + mha.wo.apply(mha.ctx_);   // [B*T, D]
  AttentionWeights out;
  out.resize(B, 1, T, T);
  for (int b = 0; b < B; ++b) {
    const Mat hb = h.middleRows(static_cast<Eigen::Index>(b) * T, T);   // [T, D]
    const Mat y = mlp_half(block, hb);                                   // [T, D]
    const std::vector<Mat> f = transformed_values(mha, b);              // H x [T, D]
    float* c = out.at(b, 0);
    Mat hz(T, D);
    for (int j = 0; j < T; ++j) {
      // Row i loses sum_h alpha^h_ij f_h(x_j).
      hz = hb;
      bool any = false;
      for (int hh = 0; hh < H; ++hh) {
        const float* a = w.at(b, hh);
        for (int i = 0; i < T; ++i)
          if (a[i * T + j] != 0.f) hz.row(i) -= a[i * T + j] * f[hh].row(j), any = true;
      }
      if (!any) {
        for (int i = 0; i < T; ++i) c[i * T + j] = 0.f;
        continue;
      }
      const Mat yz = mlp_half(block, hz);
      for (int i = 0; i < T; ++i) c[i * T + j] = static_cast<float>(std::max(0.0, 1.0 - cosine(y.row(i), yz.row(i))));
    }
    for (int i = 0; i < T; ++i) {
      double s = 0;
      for (int j = 0; j < T; ++j) s += c[i * T + j];
      if (s > 0)
        for (int j = 0; j < T; ++j) c[i * T + j] = static_cast<float>(c[i * T + j] / s);
    }
  }
  return out;
}

}  // namespace attnviz::nn
