// Translation on the trainer: length-bucketed batches, teacher forcing, per-token loss.
#include <attnviz/error.hpp>
#include <attnviz/train/tasks.hpp>

#include "train/common_options.hpp"

#include <cmath>

namespace attnviz::train {

namespace {

class TranslateTask : public TrainTask {
 public:
  TranslateTask(models::Translator& model, const std::vector<models::Example>& data) : model_(model), data_(data) {}
  long examples() const override { return static_cast<long>(data_.size()); }

  std::vector<std::vector<int>> batches(int epoch, std::uint64_t seed, int batch) const override {
    std::vector<std::vector<int>> out;
    for (const auto& b : models::make_batches(data_, batch, seed, epoch)) {
      std::vector<int> idx;
      for (const auto* ex : b) idx.push_back(static_cast<int>(ex - data_.data()));
      out.push_back(std::move(idx));
    }
    return out;
  }

  StepResult step(const std::vector<int>& idx, nn::Rng& rng) override {
    std::vector<const models::Example*> batch;
    for (int i : idx) batch.push_back(&data_[i]);
    models::BatchResult r = model_.train_batch(batch, model_.config.dropout > 0 ? &rng : nullptr);
    // reported: the cross-entropy per target token (the coverage penalty is minimised beside it)
    // (and the guided-alignment loss); a non-finite one is reported so the trainer stops on it
    const double extra = r.penalty + r.guide;
    return {std::isfinite(extra) ? r.loss : extra, r.tokens, r.correct};
  }

 private:
  models::Translator& model_;
  const std::vector<models::Example>& data_;
};

}  // namespace

TrainResult train_translator(models::Translator& model, const std::vector<models::Example>& data,
                             const TranslateTrainOptions& opt, const Callbacks& cb) {
  if (data.empty()) throw UsageError("translation training: no sentence pairs");
  TranslateTask task(model, data);
  TrainerOptions t = common_options(opt);
  t.min_lr = opt.lr * opt.min_lr_ratio;
  t.warmup_steps = opt.warmup;
  t.metadata = opt.extra;
  return train::train(model, task, t, cb);
}

}  // namespace attnviz::train
