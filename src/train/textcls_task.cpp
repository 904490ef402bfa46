// Text classification on the trainer: padded batches, dropout from the step's generator.
#include <attnviz/error.hpp>
#include <attnviz/engine/loss.hpp>
#include <attnviz/train/tasks.hpp>

#include "train/common_options.hpp"

#include <numeric>

namespace attnviz::train {

namespace {

class TextTask : public TrainTask {
 public:
  TextTask(models::TextClassifier& model, const TextDataset& train, const TextDataset& eval)
      : model_(model), train_(train), eval_(eval) {}
  long examples() const override { return static_cast<long>(train_.size()); }

  // The order of the previous release: shuffled by Rng(seed).fork(1000 + epoch).
  std::vector<std::vector<int>> batches(int epoch, std::uint64_t seed, int batch) const override {
    std::vector<int> order(train_.size());
    std::iota(order.begin(), order.end(), 0);
    nn::Rng(seed).fork(1000 + static_cast<std::uint64_t>(epoch)).shuffle(order);
    return split_batches(order, batch);
  }

  StepResult step(const std::vector<int>& idx, nn::Rng& rng) override {
    std::vector<std::string> texts;
    std::vector<int> y;
    for (int i : idx) texts.push_back(train_.texts[i]), y.push_back(train_.y[i]);
    Mat logits = model_.forward(model_.batch(texts), &rng);   // [B, C], no sink: no weights
    auto ce = nn::softmax_cross_entropy(logits, y);
    if (std::isfinite(ce.loss)) model_.backward(ce.dlogits);
    return {ce.loss, static_cast<long>(y.size()), ce.correct};
  }

  models::EvalResult evaluate() override {
    if (eval_.size() == 0) return {};
    return models::evaluate_textcls(model_, eval_);
  }

 private:
  models::TextClassifier& model_;
  const TextDataset& train_;
  const TextDataset& eval_;
};

}  // namespace

TrainResult train_textcls(models::TextClassifier& model, const TextDataset& train, const TextDataset& eval,
                          const TextTrainOptions& opt, const Callbacks& cb) {
  if (train.size() == 0) throw UsageError("textcls training: no training examples");
  if (opt.epochs <= 0 || opt.batch <= 0) throw UsageError("textcls training: epochs and batch must be positive");
  if (train.labels != model.labels())
    throw UsageError("textcls training: the data's labels differ from the model's labels");
  TextTask task(model, train, eval);
  const long steps_per_epoch = (task.examples() + opt.batch - 1) / opt.batch;
  TrainerOptions t = common_options(opt);
  t.min_lr = opt.min_lr;
  t.warmup_steps = static_cast<long>(opt.warmup_epochs * steps_per_epoch);
  t.adam.weight_decay = opt.weight_decay;
  t.adam.decoupled = true;
  t.metadata = opt.extra;
  return train::train(model, task, t, cb);
}

}  // namespace attnviz::train
