// Perturbation test (Chefer et al. 2021) and deletion/insertion (Petsiuk et al. 2018) of saliency
// maps on an MNIST model: patches masked or revealed in the order a method ranks them.
#include <attnviz/analysis/saliency.hpp>
#include <attnviz/engine/ops.hpp>
#include <attnviz/engine/rng.hpp>
#include <attnviz/error.hpp>
#include <attnviz/models/faithfulness.hpp>

#include <algorithm>
#include <functional>
#include <numeric>

namespace attnviz::models {

double trapezoid_auc(const std::vector<double>& y) {
  if (y.size() < 2) return 0;
  const double dx = 1.0 / static_cast<double>(y.size() - 1);
  double a = 0;
  for (size_t k = 0; k + 1 < y.size(); ++k) a += (y[k] + y[k + 1]) / 2 * dx;
  return 100 * a;
}

namespace {

// Pixel indices of patch p of a grid of `side` patches of `patch` pixels, image width `width`.
void for_patch_pixels(int p, int side, int patch, int width, const std::function<void(int)>& f) {
  const int r0 = (p / side) * patch, c0 = (p % side) * patch;
  for (int r = r0; r < r0 + patch; ++r)
    for (int c = c0; c < c0 + patch; ++c) f(r * width + c);
}

}  // namespace

TopPatches top_patches(const float* image, int width, int side, int patch, const std::vector<int>& order, int count) {
  TopPatches t;
  count = std::min<int>(count, static_cast<int>(order.size()));
  if (count <= 0) return t;
  double total = 0, top = 0;
  for (int p = 0; p < side * side; ++p) for_patch_pixels(p, side, patch, width, [&](int px) { total += image[px]; });
  for (int k = 0; k < count; ++k) {
    double ink = 0;
    for_patch_pixels(order[k], side, patch, width, [&](int px) { ink += image[px]; });
    t.blank += ink == 0;
    top += ink;
  }
  t.blank /= count;
  t.ink = total > 0 ? top / total : 0;
  return t;
}

FaithfulnessResult perturbation_test(MnistModel& model, const ImageSet& set, const PerturbationOptions& opt) {
  const MnistConfig& cfg = model.config();
  if (cfg.arch != "vit") throw UsageError("the perturbation test needs a ViT (patch attention); the model is '" + cfg.arch + "'");
  if (opt.steps < 1) throw UsageError("--steps must be at least 1");
  std::vector<bool> is_random;
  std::vector<SaliencyMethod> kinds;
  for (const auto& m : opt.methods) {
    is_random.push_back(m == "random");
    kinds.push_back(m == "random" ? SaliencyMethod::Cls : parse_saliency_method(m));
  }
  const int N = std::min(opt.images, set.count), side = cfg.grid(), P = cfg.patches(), patch = cfg.patch;
  const int W = set.cols, S = opt.steps + 1, M = static_cast<int>(opt.methods.size());
  FaithfulnessResult res;
  res.images = N;
  for (int k = 0; k < S; ++k) res.fractions.push_back(static_cast<double>(k) / opt.steps);
  res.methods.resize(M);
  for (int m = 0; m < M; ++m) {
    auto& c = res.methods[m];
    c.method = opt.methods[m];
    c.positive.assign(S, 0), c.negative.assign(S, 0), c.deletion.assign(S, 0), c.insertion.assign(S, 0);
  }
  long correct = 0;
  const int chunk = 32;
  for (int from = 0; from < N; from += chunk) {
    const int n = std::min(chunk, N - from);
    std::vector<int> idx(n);
    std::iota(idx.begin(), idx.end(), from);
    // Records carry the prediction, the attention gradients and the LRP relevance (grad-rollout, chefer).
    const std::vector<AttentionRecord> recs = record_mnist(model, set, idx);
    const Mat images = image_batch(set, idx);   // [n, H*W]
    std::vector<int> pred(n);
    for (int i = 0; i < n; ++i) {
      pred[i] = std::stoi(recs[i].metadata.at("prediction"));
      correct += pred[i] == set.labels[from + i];
    }
    for (int m = 0; m < M; ++m) {
      // Patch orders, most relevant first.
      std::vector<std::vector<int>> order(n, std::vector<int>(P));
      for (int i = 0; i < n; ++i) {
        std::iota(order[i].begin(), order[i].end(), 0);
        if (is_random[m]) {
          nn::Rng rng = nn::Rng(opt.seed).fork(static_cast<std::uint64_t>(from + i));
          for (int a = P - 1; a > 0; --a) std::swap(order[i][a], order[i][static_cast<int>(rng.uniform() * (a + 1)) % (a + 1)]);
        } else {
          SaliencyOptions so;
          so.method = kinds[m];
          const Mat s = patch_saliency(recs[i], so);   // [side, side]
          std::stable_sort(order[i].begin(), order[i].end(),
                           [&](int a, int b) { return s.data()[a] > s.data()[b]; });
        }
      }
      const int first = static_cast<int>(std::lround(res.fractions[std::min(1, S - 1)] * P));
      for (int i = 0; i < n; ++i) {
        const TopPatches t = top_patches(images.row(i).data(), W, side, patch, order[i], first);
        res.methods[m].top_blank += t.blank, res.methods[m].top_ink += t.ink;
      }
      // Variants: positive/deletion (S), negative (S), insertion (S) for each image.
      Mat batch(static_cast<Eigen::Index>(n) * 3 * S, images.cols());
      for (int i = 0; i < n; ++i)
        for (int k = 0; k < S; ++k) {
          const int count = static_cast<int>(std::lround(res.fractions[k] * P));
          auto pos = batch.row((static_cast<Eigen::Index>(i) * 3 + 0) * S + k);
          auto neg = batch.row((static_cast<Eigen::Index>(i) * 3 + 1) * S + k);
          auto ins = batch.row((static_cast<Eigen::Index>(i) * 3 + 2) * S + k);
          pos = images.row(i), neg = images.row(i), ins.setZero();
          for (int t = 0; t < count; ++t) {
            for_patch_pixels(order[i][t], side, patch, W, [&](int px) { pos(px) = 0, ins(px) = images(i, px); });
            for_patch_pixels(order[i][P - 1 - t], side, patch, W, [&](int px) { neg(px) = 0; });
          }
        }
      Mat prob = model.forward(batch);   // logits -> probabilities
      nn::softmax_rows(prob);
      auto& c = res.methods[m];
      for (int i = 0; i < n; ++i)
        for (int k = 0; k < S; ++k) {
          auto same = [&](int v) {
            Eigen::Index arg = 0;
            prob.row((static_cast<Eigen::Index>(i) * 3 + v) * S + k).maxCoeff(&arg);
            return arg == pred[i] ? 1.0 : 0.0;
          };
          c.positive[k] += same(0);
          c.negative[k] += same(1);
          c.deletion[k] += prob((static_cast<Eigen::Index>(i) * 3 + 0) * S + k, pred[i]);
          c.insertion[k] += prob((static_cast<Eigen::Index>(i) * 3 + 2) * S + k, pred[i]);
        }
    }
  }
  res.accuracy = N ? static_cast<double>(correct) / N : 0;
  for (auto& c : res.methods) {
    for (auto* v : {&c.positive, &c.negative, &c.deletion, &c.insertion})
      for (double& y : *v) y /= std::max(1, N);
    c.top_blank /= std::max(1, N), c.top_ink /= std::max(1, N);
    c.auc_positive = trapezoid_auc(c.positive);
    c.auc_negative = trapezoid_auc(c.negative);
    c.auc_deletion = trapezoid_auc(c.deletion);
    c.auc_insertion = trapezoid_auc(c.insertion);
  }
  return res;
}

}  // namespace attnviz::models
