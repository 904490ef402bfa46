// MNIST on the trainer: shift augmentation, the batch split over threads with model replicas.
#include <attnviz/error.hpp>
#include <attnviz/engine/loss.hpp>
#include <attnviz/train/tasks.hpp>

#include "train/common_options.hpp"

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <omp.h>

namespace attnviz::train {

namespace {

// Random shifts by up to `s` pixels in each direction, zero fill. x: [B, rows*cols] in place.
void shift_batch(Mat& x, int rows, int cols, int s, nn::Rng& rng) {
  std::vector<float> tmp(static_cast<size_t>(rows) * cols);
  for (Eigen::Index b = 0; b < x.rows(); ++b) {
    const int dy = rng.below(2 * s + 1) - s, dx = rng.below(2 * s + 1) - s;
    if (dx == 0 && dy == 0) continue;
    float* img = x.row(b).data();
    std::fill(tmp.begin(), tmp.end(), 0.f);
    for (int r = 0; r < rows; ++r) {
      const int sr = r - dy;
      if (sr < 0 || sr >= rows) continue;
      for (int c = 0; c < cols; ++c) {
        const int sc = c - dx;
        if (sc >= 0 && sc < cols) tmp[r * cols + c] = img[sr * cols + sc];
      }
    }
    std::copy(tmp.begin(), tmp.end(), img);
  }
}

class MnistTask : public TrainTask {
 public:
  MnistTask(models::MnistModel& model, const ImageSet& train, const ImageSet& test, const MnistTrainOptions& opt)
      : model_(model), train_(train), test_(test), opt_(opt) {
    n_ = opt.train_limit > 0 ? std::min<long>(opt.train_limit, train.count) : train.count;
    threads_ = std::max(1, omp_get_max_threads());
    for (int t = 1; t < threads_; ++t) replicas_.push_back(models::make_mnist_model(model.config(), 0));
  }
  int threads() const { return threads_; }
  long examples() const override { return n_; }

  StepResult step(const std::vector<int>& idx, nn::Rng& rng) override {
    std::vector<int> targets;
    for (int i : idx) targets.push_back(train_.labels[i]);
    Mat x = models::image_batch(train_, idx);  // [B, rows*cols]
    if (opt_.shift > 0) shift_batch(x, train_.rows, train_.cols, opt_.shift, rng);
    const int B = static_cast<int>(idx.size());
    const int nt = std::max(1, std::min(threads_, B));
    std::vector<double> part_loss(nt, 0.0);
    std::vector<long> part_correct(nt, 0);
    for (int t = 1; t < nt; ++t) {
      const auto& src = model_.params().params();
      const auto& dst = replicas_[t - 1]->params().params();
      for (size_t i = 0; i < src.size(); ++i) dst[i]->value = src[i]->value;
    }
    const nn::CrossEntropyOptions ce_opt{opt_.label_smoothing};
    // The training forward skips what cannot reach the logits; evaluate() (and any other caller of
    // the model afterwards) gets the full forward back.
    struct LogitsOnly {
      models::MnistModel& m;
      explicit LogitsOnly(models::MnistModel& model) : m(model) { m.logits_only = true; }
      ~LogitsOnly() { m.logits_only = false; }
    } logits_only(model_);
    for (auto& r : replicas_) r->logits_only = true;
    omp_set_max_active_levels(1);   // the engine's own loops run on one thread inside each slice
#pragma omp parallel for num_threads(nt) schedule(static, 1)
    for (int t = 0; t < nt; ++t) {
      models::MnistModel& m = t == 0 ? model_ : *replicas_[t - 1];
      const int r0 = static_cast<int>(static_cast<long>(B) * t / nt), r1 = static_cast<int>(static_cast<long>(B) * (t + 1) / nt);
      std::vector<int> tg(targets.begin() + r0, targets.begin() + r1);
      m.params().zero_grad();
      Mat logits = m.forward(x.middleRows(r0, r1 - r0));
      auto ce = nn::softmax_cross_entropy(logits, tg, ce_opt);
      // ce.dlogits is d(mean over the slice); the batch loss is the mean over all B rows.
      ce.dlogits *= static_cast<float>(r1 - r0) / static_cast<float>(B);
      m.backward(ce.dlogits);
      part_loss[t] = ce.loss * (r1 - r0);
      part_correct[t] = ce.correct;
    }
    StepResult r;
    for (int t = 0; t < nt; ++t) r.loss += part_loss[t], r.correct += part_correct[t];
    r.loss /= B;
    r.count = B;
    for (int t = 1; t < nt; ++t) {
      const auto& dst = model_.params().params();
      const auto& src = replicas_[t - 1]->params().params();
      for (size_t i = 0; i < src.size(); ++i) dst[i]->grad += src[i]->grad;
    }
    return r;
  }

  models::EvalResult evaluate() override {
    if (test_.count == 0) return {};
    return models::evaluate_mnist(model_, test_);
  }

 private:
  models::MnistModel& model_;
  const ImageSet& train_;
  const ImageSet& test_;
  MnistTrainOptions opt_;
  long n_ = 0;
  int threads_ = 1;
  std::vector<std::unique_ptr<models::MnistModel>> replicas_;
};

}  // namespace

TrainResult train_mnist(models::MnistModel& model, const ImageSet& train, const ImageSet& test,
                        const MnistTrainOptions& opt, const Callbacks& cb) {
  const auto& cfg = model.config();
  if (train.rows != cfg.image || train.cols != cfg.image)
    throw InputError("training set", fmt::format("images are {}x{} but the model expects {}x{}", train.rows,
                                                 train.cols, cfg.image, cfg.image));
  if (opt.batch <= 0 || opt.epochs <= 0) throw UsageError("--batch and --epochs must be positive");
  MnistTask task(model, train, test, opt);
  const long steps_per_epoch = (task.examples() + opt.batch - 1) / opt.batch;
  TrainerOptions t = common_options(opt);
  t.min_lr = opt.min_lr;
  t.warmup_steps = static_cast<long>(opt.warmup_epochs * steps_per_epoch);
  t.constant_lr = opt.constant_lr;
  t.adam.weight_decay = opt.weight_decay;
  t.adam.decoupled = opt.adamw;
  t.max_steps = opt.max_steps;
  auto num = [](double v) { return nlohmann::json(v).dump(); };
  t.recipe["--threads"] = std::to_string(task.threads());
  t.recipe["--shift"] = std::to_string(opt.shift);
  t.recipe["--label-smoothing"] = num(opt.label_smoothing);
  t.recipe["--warmup-epochs"] = num(opt.warmup_epochs);
  return train::train(model, task, t, cb);
}

}  // namespace attnviz::train
