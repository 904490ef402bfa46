// Bag-of-words logistic regression (idf-weighted binary features, L2 chosen on a validation split).
#include <attnviz/analysis/bow_baseline.hpp>
#include <attnviz/engine/ops.hpp>
#include <attnviz/engine/optim.hpp>
#include <attnviz/error.hpp>

#include <algorithm>
#include <cmath>

namespace attnviz {

namespace {

// One text as sorted unique vocabulary ids (unknown words dropped).
std::vector<int> text_ids(const Vocabulary& vocab, const std::string& text) {
  std::vector<int> ids;
  for (const auto& t : word_tokens(text)) {
    int id = vocab.id(fold_case(t));
    if (id >= Vocabulary::kSpecials) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

// Sparse rows: ids and their (normalised) values.
struct SparseRows {
  std::vector<std::vector<int>> ids;
  std::vector<std::vector<float>> vals;
};

SparseRows featurize(const Vocabulary& vocab, const std::vector<float>& idf, const std::vector<std::string>& texts) {
  SparseRows x;
  for (const auto& t : texts) {
    auto ids = text_ids(vocab, t);
    std::vector<float> v(ids.size());
    double norm = 0;
    for (std::size_t k = 0; k < ids.size(); ++k) norm += double(idf[ids[k]]) * idf[ids[k]];
    const float s = norm > 0 ? static_cast<float>(1.0 / std::sqrt(norm)) : 0.f;
    for (std::size_t k = 0; k < ids.size(); ++k) v[k] = idf[ids[k]] * s;
    x.ids.push_back(std::move(ids));
    x.vals.push_back(std::move(v));
  }
  return x;
}

Mat sparse_logits(const SparseRows& x, const Mat& W, const RowVec& b) {
  // x: [N, V] sparse, W: [V, C] -> [N, C]
  Mat out(x.ids.size(), W.cols());
  for (std::size_t i = 0; i < x.ids.size(); ++i) {
    out.row(i) = b;
    for (std::size_t k = 0; k < x.ids[i].size(); ++k) out.row(i) += x.vals[i][k] * W.row(x.ids[i][k]);
  }
  return out;
}

struct Fit {
  Mat W;
  RowVec b;
};

// Full-batch Adam (the engine's, L2 on W only) on mean cross-entropy + l2/2 |W|^2
// (deterministic: no sampling).
Fit fit(const SparseRows& x, const std::vector<int>& y, int V, int C, float l2, const BowOptions& opt) {
  nn::Param W(V, C), b(1, C, /*decay=*/false);   // [V, C], [1, C], zero
  nn::ParamSet params;
  params.add(W, "W");
  params.add(b, "b");
  nn::Adam adam(params, {.lr = opt.lr, .weight_decay = l2, .decoupled = false});
  const float inv_n = 1.f / static_cast<float>(std::max<std::size_t>(1, y.size()));
  for (int it = 1; it <= opt.iterations; ++it) {
    Mat p = sparse_logits(x, W.value, b.value);  // [N, C] -> probabilities -> dlogits
    nn::softmax_rows(p);
    for (Eigen::Index i = 0; i < p.rows(); ++i) p(i, y[i]) -= 1.f;
    params.zero_grad();
    for (std::size_t i = 0; i < x.ids.size(); ++i) {
      b.grad += inv_n * p.row(i);
      for (std::size_t k = 0; k < x.ids[i].size(); ++k) W.grad.row(x.ids[i][k]) += (inv_n * x.vals[i][k]) * p.row(i);
    }
    adam.step();
  }
  return {W.value, b.value};
}

int argmax_row(const Mat& m, Eigen::Index i) {
  Eigen::Index c = 0;
  m.row(i).maxCoeff(&c);
  return static_cast<int>(c);
}

struct Prepared {
  Vocabulary vocab;
  std::vector<float> idf;
};

Prepared prepare(const std::vector<std::string>& texts, int min_count) {
  std::vector<std::vector<std::string>> docs;
  for (const auto& t : texts) {
    std::vector<std::string> toks;
    for (const auto& w : word_tokens(t)) toks.push_back(fold_case(w));
    docs.push_back(std::move(toks));
  }
  Prepared p;
  p.vocab = Vocabulary::build(docs, VocabOptions{.min_count = min_count});
  // idf_w = log((1 + N) / (1 + df_w)) + 1 (the smoothed form of scikit-learn's TfidfTransformer).
  std::vector<int> df(p.vocab.size(), 0);
  for (const auto& t : texts)
    for (int id : text_ids(p.vocab, t)) ++df[id];
  p.idf.assign(p.vocab.size(), 0.f);
  const double n = static_cast<double>(texts.size());
  for (int w = 0; w < p.vocab.size(); ++w) p.idf[w] = static_cast<float>(std::log((1 + n) / (1 + df[w])) + 1);
  return p;
}

}  // namespace

Mat BowModel::logits(const std::vector<std::string>& texts) const { return sparse_logits(featurize(vocab, idf, texts), W, b); }

std::vector<int> BowModel::predict(const std::vector<std::string>& texts) const {
  Mat z = logits(texts);
  std::vector<int> out(z.rows());
  for (Eigen::Index i = 0; i < z.rows(); ++i) out[i] = argmax_row(z, i);
  return out;
}

BowModel train_bow(const TextDataset& train, const BowOptions& opt) {
  const int C = static_cast<int>(train.labels.size());
  if (C < 2) throw UsageError("bag-of-words baseline: the training set needs at least two classes");
  if (opt.l2_grid.empty()) throw UsageError("bag-of-words baseline: empty L2 grid");
  BowModel model;
  // Choose l2 on a validation part of the training set.
  if (opt.l2_grid.size() > 1) {
    TextSplit sp = stratified_split(train, opt.val_fraction, opt.seed);
    Prepared p = prepare(sp.train.texts, opt.min_count);
    SparseRows xt = featurize(p.vocab, p.idf, sp.train.texts), xv = featurize(p.vocab, p.idf, sp.test.texts);
    double best = -1;
    for (float l2 : opt.l2_grid) {
      Fit f = fit(xt, sp.train.y, p.vocab.size(), C, l2, opt);
      Mat z = sparse_logits(xv, f.W, f.b);
      int correct = 0;
      for (Eigen::Index i = 0; i < z.rows(); ++i) correct += argmax_row(z, i) == sp.test.y[i];
      double acc = z.rows() ? double(correct) / z.rows() : 0.0;
      model.l2_scores.emplace_back(l2, acc);
      if (acc > best) best = acc, model.l2 = l2;
    }
  } else {
    model.l2 = opt.l2_grid[0];
  }
  Prepared p = prepare(train.texts, opt.min_count);
  model.vocab = std::move(p.vocab);
  model.idf = std::move(p.idf);
  Fit f = fit(featurize(model.vocab, model.idf, train.texts), train.y, model.vocab.size(), C, model.l2, opt);
  model.W = std::move(f.W);
  model.b = std::move(f.b);
  return model;
}

}  // namespace attnviz
