// Norm-based attention (Kobayashi et al. 2020, "Attention is Not Only a Weight: Analyzing
// Transformers with Vector Norms"): how much each key actually moves each query's output.
#pragma once
#include <attnviz/engine/attention.hpp>

namespace attnviz::nn {

// For a MultiHeadAttention after its forward pass (it reads the cached values v = x W_V + b_V and
// W_O), with that pass's weights w [B, H, Nq, Nk]:
//   f_h(x_j) = (x_j W_V^h + b_V^h) W_O^h          W_O^h = rows h*Dh .. h*Dh+Dh-1 of W_O, [Dh, D]
//   per_head[b, h, i, j] = || alpha^h_ij f_h(x_j) ||       (= alpha^h_ij ||f_h(x_j)||)
//   summed[b, 0, i, j]   = || sum_h alpha^h_ij f_h(x_j) ||  (the key's whole vector in y_i - b_O)
// since y_i = sum_j sum_h alpha^h_ij f_h(x_j) + b_O (the output bias is the same for every key and
// is left out, as in the paper).
struct NormAttention {
  AttentionWeights per_head;   // [B, H, Nq, Nk]
  AttentionWeights summed;     // [B, 1, Nq, Nk]
};
// Throws std::invalid_argument when w's shape is not the one of mha's last forward.
NormAttention norm_attention(const MultiHeadAttention& mha, const AttentionWeights& w);

// The transformed value vectors of sequence b of mha's last forward: f[h] = [Nk, D], row j =
// f_h(x_j) = (x_j W_V^h + b_V^h) W_O^h.
std::vector<Mat> transformed_values(const MultiHeadAttention& mha, int b);

// ---- the same for layers that call the kernels directly (pretrained encoders and LMs) ----------
// The value rows of one sequence as such a layer holds them: row j = key j, value group g's Dh
// columns at g*Dh; query head h reads group h / (heads / kv_heads) (grouped-query attention).
struct ValueRows {
  const float* data = nullptr;
  int ld = 0;                   // row stride in floats
  int heads = 0, kv_heads = 0, head_dim = 0;
};
// The output projection: y = ctx W_O^T + b_O with W_O [D, H*Dh] (torch's [out, in]) when
// out_by_in, else y = ctx W_O with W_O [H*Dh, D] (the engine's Linear).
struct OutputProjection {
  const Mat* weight = nullptr;
  bool out_by_in = false;
};
// The transformed value vectors of keys first .. first+count-1: f[h] = [count, D], row r =
// f_h(x_{first+r}) = v^{g(h)}_{first+r} W_O^h (value_gram and value zeroing read them).
std::vector<Mat> transformed_values(const ValueRows& v, const OutputProjection& wo, int first, int count);
// Gram matrices of the transformed value vectors of keys first .. first+count-1:
// gram[(j * H + h) * H + h'] = <f_h(x_j), f_h'(x_j)> for j in that range (the caller's buffer holds
// at least (first + count) * H * H doubles). A key's Gram matrix never changes once its value is
// computed, so a KV cache can keep them and add only the new keys' at each step.
void value_gram(const ValueRows& v, const OutputProjection& wo, int first, int count, double* gram);
// Norm-based attention of sequence b of w [B, H, Nq, Nk] from the Gram matrices of its Nk keys:
// per_head = alpha^h_ij sqrt(G_j[h,h]), summed = sqrt(sum_h,h' alpha^h_ij alpha^h'_ij G_j[h,h']).
// out.per_head / out.summed must already have w's shape ([B, H, ...] / [B, 1, ...]).
void norm_attention_from_gram(const double* gram, const AttentionWeights& w, int b, NormAttention& out);

}  // namespace attnviz::nn
