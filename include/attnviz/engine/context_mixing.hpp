// Context mixing by value zeroing (Mohebbi, Zuidema, Chrupała & Alishahi 2023, "Quantifying
// Context Mixing in Transformers", EACL): how much each input token of a block shapes each output.
#pragma once
#include <attnviz/engine/blocks.hpp>
#include <attnviz/engine/norm_attention.hpp>

#include <functional>

namespace attnviz::nn {

// The part of a block after its attention, row by row: y_r = rest(s_r), where s = x + the attention
// output (its bias b_O included) is the residual sum the attention sub-layer leaves. Every block the
// engine runs has a row-wise rest: pre-LN (engine EncoderBlock, ViT, llama, gpt2) y = s + MLP(LN2(s));
// post-LN (BERT) y = LN2(LN1(s) + MLP(LN1(s))). rest(s [n, D], y [n, D]) must not keep s or y.
using BlockRest = std::function<void(const Mat& s, Mat& y)>;

// Value zeroing of one sequence from the pieces every attention layer has, whichever kernel ran it:
// the query rows' residual sums s [Nq, D], sequence b of that pass's weights w [B, H, Nq, Nk], the
// value rows of its Nk keys and the output projection (norm_attention.hpp: f_h(x_j) = v_j^h W_O^h,
// grouped-query heads included), and the block's rest. Zeroing key j's value vector in every head
// takes sum_h alpha^h_ij f_h(x_j) out of s_i, so
//   C[0, 0, i, j] = (1 - cos(rest(s)_i, rest(s - sum_h alpha^h_ij f_h(x_j))_i)) / row sum,
// each row summing to 1 as in the paper (clamped at 0; a row no zeroing moves stays 0). Only the
// rows that attend to j are re-run (alpha^h_ij != 0 in some head: a causal mask's zeros and padding
// keys are skipped and get 0), in batches of up to batch_rows rows: the cost is one rest() row per
// nonzero (i, j), Nq*Nk rows for bidirectional attention, Nq*(Nq+1)/2 for a causal prefill, Nk for one
// generation step. Returns [1, 1, Nq, Nk]. Throws std::invalid_argument on mismatched shapes.
AttentionWeights value_zeroing(const Mat& s, const AttentionWeights& w, int b, const ValueRows& v,
                               const OutputProjection& wo, const BlockRest& rest, int batch_rows = 256);

// For a pre-LN EncoderBlock after its (evaluation) forward pass on x [B*T, D] that produced the
// weights w [B, H, T, T]: the value zeroing above of each sequence with the block's LN2 + MLP as
// its rest. Padding keys get 0. [B, 1, T, T].
// Throws std::invalid_argument when x or w do not match the block's last forward, or for a
// post_norm block.
AttentionWeights value_zeroing(const EncoderBlock& block, const Mat& x, const AttentionWeights& w);

// For a pre-LN DecoderBlock after its (evaluation) forward pass on y [B*T, D] over the encoder
// memory, with that pass's weights self_w [B, H, T, T] and cross_w [B, H, T, S]: two value-zeroing
// maps per sequence, both measured on the block's output out = h2 + MLP(LN3(h2)).
//   self:  zeroing target token j's value in the causal self-attention; the rest after it is
//          h1 -> h2 = h1 + Cross(LN2(h1), memory) -> out, row-wise for a fixed memory (each re-run
//          row attends to its sequence's source keys). [B, 1, T, T], 0 above the diagonal.
//   cross: zeroing source token j's value in the cross-attention; the rest is h2 -> out.
//          [B, 1, T, S], 0 on padding source keys.
// Each row sums to 1 (Mohebbi et al. 2023; the two maps are normalised separately). Padded target
// rows (t >= the target length) are computed like the others; crop them.
// Throws std::invalid_argument when y or the weights do not match the block's last forward.
struct DecoderMixing {
  AttentionWeights self, cross;
};
DecoderMixing value_zeroing(const DecoderBlock& block, const Mat& y, const AttentionWeights& self_w,
                            const AttentionWeights& cross_w);

}  // namespace attnviz::nn
