// Norm-based attention (Kobayashi et al. 2020) from a MultiHeadAttention's forward cache.
#include <attnviz/engine/norm_attention.hpp>

#include <stdexcept>

namespace attnviz::nn {

std::vector<Mat> transformed_values(const MultiHeadAttention& mha, int b) {
  // mha.v_: [B*Nk, D]; W_O: [D, D] -> H x [Nk, D]
  const int Nk = mha.Nk_, H = mha.opt.heads, Dh = mha.opt.dim / H;
  const Mat& Wo = mha.wo.weight.value;
  std::vector<Mat> f(H);
  for (int h = 0; h < H; ++h)
    f[h].noalias() = mha.v_.block(static_cast<Eigen::Index>(b) * Nk, h * Dh, Nk, Dh) * Wo.middleRows(h * Dh, Dh);
  return f;
}

NormAttention norm_attention(const MultiHeadAttention& mha, const AttentionWeights& w) {
  // w: [B, H, Nq, Nk]; mha.v_: [B*Nk, D]; mha.wo.weight: [D, D]
  const int B = mha.B_, Nq = mha.Nq_, Nk = mha.Nk_, H = mha.opt.heads, D = mha.opt.dim;
  if (w.B != B || w.H != H || w.Nq != Nq || w.Nk != Nk || mha.v_.rows() != static_cast<Eigen::Index>(B) * Nk)
    throw std::invalid_argument("norm_attention: the weights are not those of the layer's last forward pass");
  NormAttention out;
  out.per_head.resize(B, H, Nq, Nk);
  out.summed.resize(B, 1, Nq, Nk);
  for (int b = 0; b < B; ++b) {
    const std::vector<Mat> f = transformed_values(mha, b);   // H x [Nk, D]
    for (int h = 0; h < H; ++h) {
      const Vec norms = f[h].rowwise().norm();   // [Nk]
      const float* a = w.at(b, h);
      float* ph = out.per_head.at(b, h);
      for (int i = 0; i < Nq; ++i)
        for (int j = 0; j < Nk; ++j) ph[i * Nk + j] = a[i * Nk + j] * norms[j];
    }
    float* s = out.summed.at(b, 0);
    Mat sum(Nk, D);   // row j: sum_h alpha^h_ij f_h(x_j)
    for (int i = 0; i < Nq; ++i) {
      sum.setZero();
      for (int h = 0; h < H; ++h) {
        const float* a = w.at(b, h) + static_cast<size_t>(i) * Nk;
        for (int j = 0; j < Nk; ++j)
          if (a[j] != 0.f) sum.row(j) += a[j] * f[h].row(j);
      }
      for (int j = 0; j < Nk; ++j) s[i * Nk + j] = sum.row(j).norm();
    }
  }
  return out;
}

}  // namespace attnviz::nn
