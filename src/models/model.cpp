// The model contract's shared pieces: the attention collector and the evaluation result.
#include <attnviz/models/model.hpp>

#include <stdexcept>

namespace attnviz::models {

void AttentionCollector::weights(const std::string& name, nn::AttentionWeights&& weights, int query_offset) {
  if (!w.count(name)) names.push_back(name);
  w[name] = std::move(weights);
}

void AttentionCollector::gradients(const std::string& name, nn::AttentionWeights&& grads) {
  dw[name] = std::move(grads);
}

void EvalResult::set(const std::string& name, double value) {
  for (auto& [n, v] : metrics)
    if (n == name) {
      v = value;
      return;
    }
  metrics.emplace_back(name, value);
}

bool EvalResult::has(const std::string& name) const {
  for (const auto& m : metrics)
    if (m.first == name) return true;
  return false;
}

double EvalResult::get(const std::string& name) const {
  for (const auto& [n, v] : metrics)
    if (n == name) return v;
  throw std::out_of_range("no metric '" + name + "' in the evaluation result");
}

}  // namespace attnviz::models
