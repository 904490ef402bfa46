// Classification metrics: accuracy, per-class precision/recall/F1, macro-F1 and the confusion matrix.
#pragma once
#include <string>
#include <vector>

namespace attnviz {

struct ClassMetrics {
  int n = 0;                                // examples scored
  double accuracy = 0;
  double macro_f1 = 0;                      // unweighted mean of the per-class F1
  std::vector<double> precision, recall, f1;  // [C]; 0 where undefined (no predictions / no support)
  std::vector<int> support;                 // [C] true examples per class
  std::vector<std::vector<int>> confusion;  // [C][C]: confusion[true][pred]
};

// truth, pred: [N] class indices in [0, classes); throws std::invalid_argument on a size mismatch
// or an index out of range.
ClassMetrics classification_metrics(const std::vector<int>& truth, const std::vector<int>& pred, int classes);

// A fixed-width text table of per-class precision/recall/F1/support plus accuracy and macro-F1.
std::string format_metrics(const ClassMetrics& m, const std::vector<std::string>& labels);

}  // namespace attnviz
