// Bag-of-words logistic regression: the baseline that shows what attention adds on a text task.
#pragma once
#include <attnviz/data/fortunes.hpp>
#include <attnviz/tensor.hpp>
#include <attnviz/text/tokenizer.hpp>

#include <cstdint>
#include <vector>

namespace attnviz {

struct BowOptions {
  int min_count = 1;                 // vocabulary: case-folded tokens of the training texts
  // L2 strength, chosen on a stratified validation part of the training set (val_fraction), then
  // the model is refit on the whole training set with the best value.
  std::vector<float> l2_grid = {1e-5f, 3e-5f, 1e-4f, 3e-4f, 1e-3f, 3e-3f};
  double val_fraction = 0.15;
  int iterations = 300;              // full-batch Adam steps
  float lr = 0.05f;
  std::uint64_t seed = 1;            // validation split
};

// Features: x_w = idf_w * 1[w in text], each row scaled to unit L2 norm.
// Model: softmax(x W + b), W: [V, C], b: [1, C]; loss: mean cross-entropy + l2/2 * |W|^2.
struct BowModel {
  Vocabulary vocab;
  std::vector<float> idf;            // [V]
  Mat W;                             // [V, C]
  RowVec b;                          // [C]
  float l2 = 0;                      // the value chosen
  std::vector<std::pair<float, double>> l2_scores;  // (l2, validation accuracy) per grid value

  Mat logits(const std::vector<std::string>& texts) const;     // [N, C]
  std::vector<int> predict(const std::vector<std::string>& texts) const;  // [N]
};

// Throws UsageError when the training set has fewer than two classes.
BowModel train_bow(const TextDataset& train, const BowOptions& opt = {});

}  // namespace attnviz
