// Classification metrics: accuracy, per-class precision/recall/F1, macro-F1, confusion matrix.
#include <attnviz/analysis/classify_metrics.hpp>

#include <fmt/core.h>

#include <stdexcept>

namespace attnviz {

ClassMetrics classification_metrics(const std::vector<int>& truth, const std::vector<int>& pred, int classes) {
  if (truth.size() != pred.size()) throw std::invalid_argument("classification_metrics: size mismatch");
  if (classes <= 0) throw std::invalid_argument("classification_metrics: no classes");
  ClassMetrics m;
  m.n = static_cast<int>(truth.size());
  m.confusion.assign(classes, std::vector<int>(classes, 0));
  int correct = 0;
  for (std::size_t i = 0; i < truth.size(); ++i) {
    if (truth[i] < 0 || truth[i] >= classes || pred[i] < 0 || pred[i] >= classes)
      throw std::invalid_argument("classification_metrics: class index out of range");
    ++m.confusion[truth[i]][pred[i]];
    correct += truth[i] == pred[i];
  }
  m.accuracy = m.n ? static_cast<double>(correct) / m.n : 0.0;
  m.precision.assign(classes, 0);
  m.recall.assign(classes, 0);
  m.f1.assign(classes, 0);
  m.support.assign(classes, 0);
  for (int c = 0; c < classes; ++c) {
    int tp = m.confusion[c][c], predicted = 0;
    for (int t = 0; t < classes; ++t) predicted += m.confusion[t][c];
    for (int p = 0; p < classes; ++p) m.support[c] += m.confusion[c][p];
    m.precision[c] = predicted ? static_cast<double>(tp) / predicted : 0.0;
    m.recall[c] = m.support[c] ? static_cast<double>(tp) / m.support[c] : 0.0;
    double s = m.precision[c] + m.recall[c];
    m.f1[c] = s > 0 ? 2 * m.precision[c] * m.recall[c] / s : 0.0;
    m.macro_f1 += m.f1[c] / classes;
  }
  return m;
}

std::string format_metrics(const ClassMetrics& m, const std::vector<std::string>& labels) {
  std::string out = fmt::format("{:<14} {:>9} {:>7} {:>7} {:>8}\n", "class", "precision", "recall", "F1", "support");
  for (std::size_t c = 0; c < m.f1.size(); ++c) {
    std::string name = c < labels.size() ? labels[c] : fmt::format("#{}", c);
    out += fmt::format("{:<14} {:>9.3f} {:>7.3f} {:>7.3f} {:>8}\n", name, m.precision[c], m.recall[c], m.f1[c],
                       m.support[c]);
  }
  out += fmt::format("accuracy {:.4f}  macro-F1 {:.4f}  (n = {})\n", m.accuracy, m.macro_f1, m.n);
  return out;
}

}  // namespace attnviz
