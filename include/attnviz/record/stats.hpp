// Summary statistics of attention tensors (used by `inspect` and the renderer's captions).
#pragma once
#include <attnviz/record/record.hpp>

#include <string>
#include <utility>
#include <vector>

namespace attnviz {

// Mean over queries of the Shannon entropy (nats) of each query's weight row, per head.
std::vector<float> head_entropy(const AttentionTensor& t);
// The k largest (key index, weight) pairs of one query row of one head, largest first.
std::vector<std::pair<int, float>> top_keys(const AttentionTensor& t, int head, int query, int k);

// Per layer x head statistics over many records (`attnviz stats`), each a mean over every query
// row of every sample (rows holding NaN are skipped):
//   entropy   Shannon entropy of the row, nats (head_entropy's quantity);
//   sink      weight on key 0, the first token (the "attention sink" of Xiao et al. 2023: <bos>,
//             [CLS], the first source token);
//   distance  attended distance sum_k w_k |q - k| in positions (meaningful for self-attention; for
//             cross-attention it compares target and source positions);
//   top_k     mass of the k largest weights of the row.
struct HeadStatsOptions {
  int top_k = 5;
  std::string tensors;   // only tensors whose name contains this; "" = all
  std::vector<std::string> sources;  // optional, per record: where it came from (named in errors)
};
struct HeadStat {
  std::string tensor;
  int layer = -1, head = 0;
  double entropy = 0, sink = 0, distance = 0, top_k = 0;
  long rows = 0;         // query rows averaged
};
struct HeadStatsTable {
  std::vector<HeadStat> stats;   // tensors in the first record's order, heads ascending
  int samples = 0, top_k = 5;
};
// Tensors are matched by name across records; a record lacking one, or with another head count,
// is an InputError naming opt.sources[k] (or `path` and the sample number).
HeadStatsTable head_stats(const std::vector<AttentionRecord>& records, const HeadStatsOptions& opt = {},
                          const std::string& path = "");

}  // namespace attnviz
