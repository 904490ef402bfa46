// Softmax cross-entropy with label smoothing and an ignore index.
#pragma once
#include <attnviz/tensor.hpp>

#include <vector>

namespace attnviz::nn {

struct CrossEntropyOptions {
  float label_smoothing = 0.f;   // eps: target = (1 - eps) * onehot + eps / V (PyTorch's definition)
  int ignore_index = -100;       // targets equal to this contribute nothing
};

struct CrossEntropyResult {
  double loss = 0;   // mean over counted rows (0 when none)
  int count = 0;     // rows not ignored
  int correct = 0;   // counted rows whose argmax equals the target
  Mat dlogits;       // [N, V]: d(mean loss)/d(logits); zero rows for ignored targets
};

// logits: [N, V], targets: [N] in [0, V) or ignore_index (else throws std::out_of_range).
CrossEntropyResult softmax_cross_entropy(const Mat& logits, const std::vector<int>& targets,
                                         const CrossEntropyOptions& opt = {});

}  // namespace attnviz::nn
