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
// - A 2x2 rotation (RoPE's pair (a, b) -> (a c - b s, a s + b c), a fixed orthogonal map of the
//   position with no bias): the w^2 rule (Montavon et al. 2017), R_i = sum_j w_ij^2 R_j (the column
//   sums of w^2 are c^2 + s^2 = 1), lrp_rotation. Conserving per pair and never amplifying; alpha = 1
//   on a 2-input map absorbs the relevance of every output whose two contributions are negative.
// - An elementwise product of two tensors (SwiGLU's silu(g) * u): each operand gets half of R (the
//   gradient x input split gives each the whole R, halved as for the matrix products).
//
// The three tensor rules are templates on the scalar (float for the models, double for tests),
// explicitly instantiated for float and double; the float overloads take Eigen blocks.
#pragma once
#include <attnviz/engine/blocks.hpp>

#include <algorithm>

namespace attnviz::nn {

template <class S>
using MatOf = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Linear, alpha = 1, beta = 0. x: [N, in], W: [in, out], R: [N, out] -> [N, in]. absorbed (optional)
// is increased by the relevance of the outputs whose z_.j are all 0 (passed to no input).
template <class S>
MatOf<S> lrp_linear(const MatOf<S>& x, const MatOf<S>& W, const MatOf<S>& R, double* absorbed = nullptr);
inline Mat lrp_linear(const Mat& x, const Mat& W, const Mat& R) { return lrp_linear<float>(x, W, R); }

// y = a + b over one sequence: a, b, R: [T, D]. Sets Ra, Rb [T, D] (eq. 6-9).
template <class S>
void lrp_add(const MatOf<S>& a, const MatOf<S>& b, const MatOf<S>& R, MatOf<S>& Ra, MatOf<S>& Rb);
inline void lrp_add(const Mat& a, const Mat& b, const Mat& R, Mat& Ra, Mat& Rb) { lrp_add<float>(a, b, R, Ra, Rb); }

// C = X Y: X [n, k], Y [k, m], R [n, m]. Sets RX [n, k], RY [k, m], each holding half of R.
template <class S>
void lrp_matmul(const MatOf<S>& X, const MatOf<S>& Y, const MatOf<S>& R, MatOf<S>& RX, MatOf<S>& RY);
inline void lrp_matmul(const Mat& X, const Mat& Y, const Mat& R, Mat& RX, Mat& RY) { lrp_matmul<float>(X, Y, R, RX, RY); }

// C = X ⊙ Y (elementwise; SwiGLU's silu(g) * u): X, Y, R of one shape. The gradient x input split
// gives each operand the whole R (X ⊙ Y ⊙ R / C), halved as for lrp_matmul: RX = RY = R / 2 where
// C != 0, 0 where C = 0 (such an entry passes nothing).
template <class S>
void lrp_product(const MatOf<S>& X, const MatOf<S>& Y, const MatOf<S>& R, MatOf<S>& RX, MatOf<S>& RY);

// One 2x2 rotation y = (a c - b s, a s + b c), W = [[c, s], [-s, c]] ([in, out]), by the w^2 rule:
// from the outputs' relevance (ra_out, rb_out) to the inputs' (ra, rb) in proportion to w_ij^2
// (c^2 + s^2 = 1, so ra + rb = ra_out + rb_out). Independent of a and b.
template <class S>
void lrp_rotation(S c, S s, S ra_out, S rb_out, S& ra, S& rb) {
  const S cc = c * c, ss = s * s, norm = cc + ss;   // 1 up to rounding
  ra = (cc * ra_out + ss * rb_out) / norm;
  rb = (ss * ra_out + cc * rb_out) / norm;
}

struct AttentionRelevance {
  Mat query_input;            // [B*Nq, D]: relevance of the query input (LN1's output in a block)
  Mat kv_input;               // [B*Nk, kv_dim]: of the key/value input (self-attention: add both)
  AttentionWeights attention; // [B, H, Nq, Nk]: R^(b) of the normalised attention weights (A in C = A V)
};

// A MultiHeadAttention after its forward pass (it reads the cached q, k, v, the context and the
// projections' inputs), w: that pass's weights [B, H, Nq, Nk], R: relevance of its output
// [B*Nq, D]. wo, then per (batch, head) C = A V and S = Q K^T, softmax passed through, then wq,
// wk, wv. Throws std::invalid_argument when w is not the last forward's shape.
AttentionRelevance lrp_attention(const MultiHeadAttention& mha, const AttentionWeights& w, const Mat& R,
                                 double* absorbed = nullptr);

// An EncoderBlock after its forward pass on x [B*T, D] (evaluation: no dropout) that produced
// the weights w [B, H, T, T]; R: relevance of the block output [B*T, D]. Returns the relevance of
// x [B*T, D]; attention (optional) receives R^(b) of the block's attention weights [B, H, T, T].
//   y = h + MLP(LN2(h)): add split per sequence, FC2, activation, FC1, LN2; the two parts of h summed;
//   h = x + MHA(LN1(x)): add split, lrp_attention, LN1; the two parts of x summed.
// A post_norm block (BERT: h = LN1(x + MHA(x)), y = LN2(h + MLP(h))) takes the same steps in the
// same order, its LayerNorms passing relevance through: LN2, the add split of h + MLP(h), FC2,
// activation, FC1 (its part added to h's), LN1, the add split of x + MHA(x), lrp_attention.
// absorbed (optional): += what its Linear layers absorb (lrp_linear), so that sum(result) + absorbed
// = sum R.
Mat lrp_encoder_block(const EncoderBlock& block, const Mat& x, const AttentionWeights& w, const Mat& R,
                      AttentionWeights* attention = nullptr, double* absorbed = nullptr);

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
