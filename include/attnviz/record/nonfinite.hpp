// Finding NaN/Inf attention weights (imports keep them; `inspect` reports how many and where).
#pragma once
#include <attnviz/record/record.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace attnviz {

struct NonFinitePos {
  int head = 0, query = 0, key = 0;
  float value = 0;  // NaN, +Inf or -Inf
};

struct NonFiniteReport {
  std::size_t nan = 0, pos_inf = 0, neg_inf = 0;
  std::vector<NonFinitePos> first;  // the first few, in [head, query, key] order
  std::size_t total() const { return nan + pos_inf + neg_inf; }
};

// Counts the non-finite values of a tensor and keeps the positions of the first max_positions.
NonFiniteReport find_nonfinite(const AttentionTensor& t, std::size_t max_positions = 5);

// "NaN" / "+Inf" / "-Inf".
std::string nonfinite_name(float v);

}  // namespace attnviz
