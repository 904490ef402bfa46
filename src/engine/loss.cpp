// Softmax cross-entropy with label smoothing and ignore index (mean over counted rows).
#include <attnviz/engine/loss.hpp>

#include <cmath>
#include <stdexcept>
#include <string>

namespace attnviz::nn {

CrossEntropyResult softmax_cross_entropy(const Mat& logits, const std::vector<int>& targets,
                                         const CrossEntropyOptions& opt) {
  // logits: [N, V], targets: [N]
  const int N = static_cast<int>(logits.rows()), V = static_cast<int>(logits.cols());
  if (static_cast<int>(targets.size()) != N)
    throw std::invalid_argument("softmax_cross_entropy: " + std::to_string(targets.size()) +
                                " targets for " + std::to_string(N) + " rows");
  CrossEntropyResult r;
  r.dlogits = Mat::Zero(N, V);
  const double eps = opt.label_smoothing;
  double total = 0;
  for (int i = 0; i < N; ++i) {
    int y = targets[i];
    if (y == opt.ignore_index) continue;
    if (y < 0 || y >= V) throw std::out_of_range("softmax_cross_entropy: target " + std::to_string(y) +
                                                 " outside [0, " + std::to_string(V) + ")");
    ++r.count;
    Eigen::Index arg;
    float m = logits.row(i).maxCoeff(&arg);
    if (arg == y) ++r.correct;
    double s = 0;
    for (int j = 0; j < V; ++j) s += std::exp(static_cast<double>(logits(i, j)) - m);
    double lse = m + std::log(s);
    // loss_i = -sum_j t_j log p_j with t = (1-eps) onehot + eps/V
    double mean_logp = 0;
    for (int j = 0; j < V; ++j) mean_logp += logits(i, j) - lse;
    mean_logp /= V;
    total += -(1 - eps) * (logits(i, y) - lse) - eps * mean_logp;
    for (int j = 0; j < V; ++j)
      r.dlogits(i, j) = static_cast<float>(std::exp(logits(i, j) - lse) - eps / V);
    r.dlogits(i, y) -= static_cast<float>(1 - eps);
  }
  if (r.count > 0) {
    r.loss = total / r.count;
    r.dlogits /= static_cast<float>(r.count);
  }
  return r;
}

}  // namespace attnviz::nn
