// Context mixing by value zeroing (Mohebbi, Zuidema, Chrupała & Alishahi 2023, "Quantifying
// Context Mixing in Transformers", EACL): how much each input token of a block shapes each output.
#pragma once
#include <attnviz/engine/blocks.hpp>

namespace attnviz::nn {

// For a pre-LN EncoderBlock after its (evaluation) forward pass on x [B*T, D] that produced the
// weights w [B, H, T, T]: y^{¬j} is the block output when token j's value vector is zeroed in
// every head (keys and queries untouched, so the weights stay), and
//   C[b, 0, i, j] = (1 - cos(y_i, y^{¬j}_i)) / sum_j' (1 - cos(y_i, y^{¬j'}_i)),
// each row summing to 1 as in the paper (a row whose outputs no zeroing moves stays 0). Zeroing v_j
// removes sum_h alpha^h_ij f_h(x_j) (norm_attention.hpp) from attention output i, after which the
// residual, LN2 and the MLP run as in the block. Padding keys get 0. [B, 1, T, T].
// Throws std::invalid_argument when x or w do not match the block's last forward.
AttentionWeights value_zeroing(const EncoderBlock& block, const Mat& x, const AttentionWeights& w);

}  // namespace attnviz::nn
