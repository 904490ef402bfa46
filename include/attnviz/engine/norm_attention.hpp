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

}  // namespace attnviz::nn
