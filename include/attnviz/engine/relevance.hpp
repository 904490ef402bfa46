// Layer-wise relevance propagation through the engine's transformer layers, with the rules of
// Chefer, Gur & Wolf (2021, "Transformer Interpretability Beyond Attention Visualization", CVPR)
// that their transformer attribution multiplies with the attention gradients.
//
// The rules (relevance R flows from a layer's output back to its inputs; every rule is linear in R):
// - Linear y = x W + b: LRP-alpha-beta with alpha = 1, beta = 0 (the paper's eq. 4, alpha = 1 in
//   its code), on signed inputs: z_ij = (x_i w_ij)^+ = x_i^+ w_ij^+ + x_i^- w_ij^-,
//   R_i = sum_j z_ij / (sum_i' z_i'j) R_j. The bias takes no relevance. Conserving: sum_i R_i =
//   sum_j R_j over the columns j whose z_.j are not all 0 (a column with none passes nothing).
// - Residual add y = a + b (and the products A V, Q K^T): the plain gradient x input split
//   R_a = a * R / (a + b) (the paper's eq. 6-7; 0 where the denominator is 0), then the
//   normalisation of eq. 8-9, over the whole sequence: R_a <- R_a |sum R_a| / (|sum R_a| + |sum R_b|)
//   * sum R / sum R_a, the same for R_b, so sum R_a + sum R_b = sum R exactly.
// - The matrix products of attention, C = A V and S = Q K^T: R_A = A * ((R / C) V^T),
//   R_V = V * (A^T (R / C)) (each sums to sum R), both halved; that is eq. 8-9 for this case, as
//   their code does it. The 1/sqrt(Dh) scale of S cancels in R / S times the gradient.
// - LayerNorm, GELU/ReLU, softmax, dropout: passed through unchanged (R_in = R_out), as in their
//   code; the copy of x feeding both branches of a residual sums their relevances.
#pragma once
#include <attnviz/engine/blocks.hpp>

namespace attnviz::nn {

// Linear, alpha = 1, beta = 0. x: [N, in], W: [in, out], R: [N, out] -> [N, in].
Mat lrp_linear(const Mat& x, const Mat& W, const Mat& R);

// y = a + b over one sequence: a, b, R: [T, D]. Sets Ra, Rb [T, D] (eq. 6-9).
void lrp_add(const Mat& a, const Mat& b, const Mat& R, Mat& Ra, Mat& Rb);

// C = X Y: X [n, k], Y [k, m], R [n, m]. Sets RX [n, k], RY [k, m], each holding half of R.
void lrp_matmul(const Mat& X, const Mat& Y, const Mat& R, Mat& RX, Mat& RY);

struct AttentionRelevance {
  Mat query_input;            // [B*Nq, D]: relevance of the query input (LN1's output in a block)
  Mat kv_input;               // [B*Nk, kv_dim]: of the key/value input (self-attention: add both)
  AttentionWeights attention; // [B, H, Nq, Nk]: R^(b) of the normalised attention weights (A in C = A V)
};

// A MultiHeadAttention after its forward pass (it reads the cached q, k, v, the context and the
// projections' inputs), w: that pass's weights [B, H, Nq, Nk], R: relevance of its output
// [B*Nq, D]. wo, then per (batch, head) C = A V and S = Q K^T, softmax passed through, then wq,
// wk, wv. Throws std::invalid_argument when w is not the last forward's shape.
AttentionRelevance lrp_attention(const MultiHeadAttention& mha, const AttentionWeights& w, const Mat& R);

// A pre-LN EncoderBlock after its forward pass on x [B*T, D] (evaluation: no dropout) that produced
// the weights w [B, H, T, T]; R: relevance of the block output [B*T, D]. Returns the relevance of
// x [B*T, D]; attention (optional) receives R^(b) of the block's attention weights [B, H, T, T].
//   y = h + MLP(LN2(h)): add split per sequence, FC2, activation, FC1, LN2; the two parts of h summed;
//   h = x + MHA(LN1(x)): add split, lrp_attention, LN1; the two parts of x summed.
Mat lrp_encoder_block(const EncoderBlock& block, const Mat& x, const AttentionWeights& w, const Mat& R,
                      AttentionWeights* attention = nullptr);

struct DecoderRelevance {
  Mat target_input;           // [B*T, D]: relevance of the block's input y
  Mat memory;                 // [B*S, memory_dim]: of the encoder memory (sum it over layers yourself)
  AttentionWeights self;      // [B, H, T, T]: R^(b) of the causal self-attention weights
  AttentionWeights cross;     // [B, H, T, S]: R^(b) of the cross-attention weights
};

// A pre-LN DecoderBlock after its forward pass on y [B*T, D] (evaluation: no dropout) that produced
// the weights ws [B, H, T, T] and wc [B, H, T, S]; R: relevance of the block output [B*T, D].
//   out = h2 + MLP(LN3(h2)): add split per sequence, FC2, activation, FC1, LN3; the parts of h2 summed;
//   h2 = h1 + Cross(LN2(h1), memory): add split, lrp_attention; its query part goes to h1, its
//        key/value part to the memory;
//   h1 = y + Self(LN1(y)): add split, lrp_attention, LN1; the parts of y summed.
// Conserving like its parts: sum target_input + sum memory = sum R when no Linear column drops any.
DecoderRelevance lrp_decoder_block(const DecoderBlock& block, const Mat& y, const AttentionWeights& ws,
                                   const AttentionWeights& wc, const Mat& R);

}  // namespace attnviz::nn
