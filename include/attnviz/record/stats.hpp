// Summary statistics of attention tensors (used by `inspect` and the renderer's captions).
#pragma once
#include <attnviz/record/record.hpp>

#include <utility>
#include <vector>

namespace attnviz {

// Mean over queries of the Shannon entropy (nats) of each query's weight row, per head.
std::vector<float> head_entropy(const AttentionTensor& t);
// The k largest (key index, weight) pairs of one query row of one head, largest first.
std::vector<std::pair<int, float>> top_keys(const AttentionTensor& t, int head, int query, int k);

}  // namespace attnviz
