// Norm-based attention (Kobayashi et al. 2020) from a layer's value rows and output projection.
#include <attnviz/engine/norm_attention.hpp>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace attnviz::nn {

std::vector<Mat> transformed_values(const MultiHeadAttention& mha, int b) {
  // mha.v(): [B*Nk, D] (row stride v().outerStride()); W_O: [D, D] -> H x [Nk, D]
  const int Nk = mha.Nk_, H = mha.opt.heads;
  const auto vs = mha.v();
  return transformed_values({vs.data(), static_cast<int>(vs.outerStride()), H, H, mha.opt.dim / H},
                            {&mha.wo.weight.value, false}, b * Nk, Nk);
}

std::vector<Mat> transformed_values(const ValueRows& v, const OutputProjection& wo, int first, int count) {
  // v rows first..first+count-1: [count, ld]; W_O: [H*Dh, D] (or [D, H*Dh] out_by_in) -> H x [count, D]
  const int H = v.heads, Dh = v.head_dim, group = H / std::max(1, v.kv_heads);
  const Mat& W = *wo.weight;
  std::vector<Mat> f(H);
  for (int h = 0; h < H; ++h) {
    const int g = h / group;
    Eigen::Map<const Mat, 0, Eigen::OuterStride<>> vh(v.data + static_cast<size_t>(first) * v.ld + g * Dh, count, Dh,
                                                      Eigen::OuterStride<>(v.ld));
    if (wo.out_by_in) f[h].noalias() = vh * W.middleCols(h * Dh, Dh).transpose();
    else f[h].noalias() = vh * W.middleRows(h * Dh, Dh);
  }
  return f;
}

void value_gram(const ValueRows& v, const OutputProjection& wo, int first, int count, double* gram) {
  // v rows first..first+count-1 -> gram [count, H, H] at rows first..
  const int H = v.heads;
  if (count <= 0) return;
  const int D = static_cast<int>(wo.out_by_in ? wo.weight->rows() : wo.weight->cols());
  const std::vector<Mat> f = transformed_values(v, wo, first, count);   // H x [count, D]
  for (int j = 0; j < count; ++j) {
    double* G = gram + static_cast<size_t>(first + j) * H * H;
    for (int h = 0; h < H; ++h)
      for (int h2 = h; h2 < H; ++h2) {
        double s = 0;
        const float* a = f[h].data() + static_cast<size_t>(j) * D;
        const float* c = f[h2].data() + static_cast<size_t>(j) * D;
        for (int d = 0; d < D; ++d) s += static_cast<double>(a[d]) * c[d];
        G[h * H + h2] = G[h2 * H + h] = s;
      }
  }
}

void norm_attention_from_gram(const double* gram, const AttentionWeights& w, int b, NormAttention& out) {
  // w: [B, H, Nq, Nk]; gram: [Nk, H, H]
  const int H = w.H, Nq = w.Nq, Nk = w.Nk;
  for (int h = 0; h < H; ++h) {
    const float* a = w.at(b, h);
    float* ph = out.per_head.at(b, h);
    for (int j = 0; j < Nk; ++j) {
      const float n = static_cast<float>(std::sqrt(std::max(0.0, gram[(static_cast<size_t>(j) * H + h) * H + h])));
      for (int i = 0; i < Nq; ++i) ph[static_cast<size_t>(i) * Nk + j] = a[static_cast<size_t>(i) * Nk + j] * n;
    }
  }
  // ||sum_h alpha_h f_h||^2 = alpha^T G alpha: H^2 per (query, key) instead of H * D.
  float* s = out.summed.at(b, 0);
  std::vector<double> alpha(H);
  for (int i = 0; i < Nq; ++i)
    for (int j = 0; j < Nk; ++j) {
      const double* G = gram + static_cast<size_t>(j) * H * H;
      for (int h = 0; h < H; ++h) alpha[h] = w.at(b, h)[static_cast<size_t>(i) * Nk + j];
      double q = 0;
      for (int h = 0; h < H; ++h) {
        if (alpha[h] == 0) continue;
        double r = 0;
        for (int h2 = 0; h2 < H; ++h2) r += G[h * H + h2] * alpha[h2];
        q += alpha[h] * r;
      }
      s[static_cast<size_t>(i) * Nk + j] = static_cast<float>(std::sqrt(std::max(0.0, q)));
    }
}

NormAttention norm_attention(const MultiHeadAttention& mha, const AttentionWeights& w) {
  // w: [B, H, Nq, Nk]; mha.v(): [B*Nk, D] (row stride v().outerStride()); mha.wo.weight: [D, D]
  const int B = mha.B_, Nq = mha.Nq_, Nk = mha.Nk_, H = mha.opt.heads, D = mha.opt.dim;
  if (w.B != B || w.H != H || w.Nq != Nq || w.Nk != Nk || mha.v().rows() != static_cast<Eigen::Index>(B) * Nk)
    throw std::invalid_argument("norm_attention: the weights are not those of the layer's last forward pass");
  NormAttention out;
  out.per_head.resize(B, H, Nq, Nk);
  out.summed.resize(B, 1, Nq, Nk);
  std::vector<double> gram(static_cast<size_t>(Nk) * H * H);
  for (int b = 0; b < B; ++b) {
    const auto vs = mha.v();
    const ValueRows v{vs.data() + static_cast<size_t>(b) * Nk * vs.outerStride(), static_cast<int>(vs.outerStride()), H, H, D / H};
    value_gram(v, {&mha.wo.weight.value, false}, 0, Nk, gram.data());
    norm_attention_from_gram(gram.data(), w, b, out);
  }
  return out;
}

}  // namespace attnviz::nn
