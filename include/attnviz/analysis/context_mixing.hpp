// Rollout of per-layer context-mixing maps (value zeroing, nn::value_zeroing, recorded as
// "<stack>.layerN.mixing"): how much each input token ends up in each output of the stack.
#pragma once
#include <attnviz/record/record.hpp>
#include <attnviz/tensor.hpp>

#include <vector>

namespace attnviz {

// R = C_L ... C_2 C_1 (top layer on the left) of the [1, N, N] maps, bottom to top. The maps
// already include the residual stream (value zeroing measures whole-block outputs), so no
// identity is added, unlike attention rollout; rows of R sum to 1 when every map's rows do
// (Mohebbi et al. 2023 combine layers this way). Throws InputError on shapes that do not chain.
Mat mixing_rollout(const std::vector<const AttentionTensor*>& layers);

}  // namespace attnviz
