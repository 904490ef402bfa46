// MNIST training: AdamW + warm-up/cosine, shift augmentation, per-epoch evaluation and atomic
// checkpoints, exact --resume, and a stop on a non-finite loss.
#include <attnviz/error.hpp>
#include <attnviz/models/mnist.hpp>
#include <attnviz/engine/loss.hpp>
#include <attnviz/engine/optim.hpp>
#include <attnviz/engine/rng.hpp>
#include <attnviz/io/safetensors.hpp>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <numeric>
#include <omp.h>

namespace attnviz::models {

using json = nlohmann::json;

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

// The options that must agree between a checkpoint and the run resuming it.
std::string recipe_json(const MnistTrainOptions& o, long train_count) {
  return json{{"epochs", o.epochs}, {"batch", o.batch}, {"lr", o.lr}, {"min_lr", o.min_lr},
              {"weight_decay", o.weight_decay}, {"adamw", o.adamw}, {"warmup_epochs", o.warmup_epochs},
              {"clip", o.clip}, {"label_smoothing", o.label_smoothing}, {"shift", o.shift},
              {"seed", o.seed}, {"train_count", train_count}, {"constant_lr", o.constant_lr}}
      .dump();
}

}  // namespace

TrainResult train_mnist(MnistModel& model, const ImageSet& train, const ImageSet& test, const MnistTrainOptions& opt,
                        const TrainCallbacks& cb) {
  const auto& cfg = model.config();
  if (train.rows != cfg.image || train.cols != cfg.image)
    throw InputError("training set", fmt::format("images are {}x{} but the model expects {}x{}", train.rows,
                                                 train.cols, cfg.image, cfg.image));
  if (opt.batch <= 0 || opt.epochs <= 0) throw UsageError("--batch and --epochs must be positive");
  if (opt.lr <= 0 || !std::isfinite(opt.lr)) throw UsageError("--lr must be positive");
  const long n = opt.train_limit > 0 ? std::min<long>(opt.train_limit, train.count) : train.count;
  const long steps_per_epoch = (n + opt.batch - 1) / opt.batch;
  nn::ScheduleOptions sched;
  sched.base_lr = opt.lr;
  sched.min_lr = opt.min_lr;
  sched.warmup_steps = static_cast<int>(opt.warmup_epochs * steps_per_epoch);
  sched.total_steps = static_cast<int>(opt.epochs * steps_per_epoch);

  nn::AdamOptions ao;
  ao.lr = opt.lr;
  ao.weight_decay = opt.weight_decay;
  ao.decoupled = opt.adamw;
  nn::Adam adam(model.params(), ao);
  const std::string recipe = recipe_json(opt, n);

  TrainResult result;
  int first_epoch = 0;
  if (!opt.resume.empty()) {
    StFile f = load_safetensors(opt.resume);
    const std::string path = opt.resume.string();
    auto meta = [&](const std::string& k) -> std::string {
      auto it = f.metadata.find(k);
      if (it == f.metadata.end()) throw InputError(path, "not a training checkpoint (no __metadata__ '" + k + "')");
      return it->second;
    };
    if (meta("config") != cfg.to_json())
      throw InputError(path, "checkpoint is of a different model (" + meta("config") + ")");
    if (meta("train.recipe") != recipe)
      throw InputError(path, "checkpoint was trained with other options (" + meta("train.recipe") +
                                 "); resume with the same options");
    model.params().load_from(f, path);
    adam.load_from(f, path);
    try {
      first_epoch = std::stoi(meta("train.epochs_done"));
      for (const auto& e : json::parse(meta("train.history"))) {
        EpochInfo ei;
        ei.epoch = e.at("epoch");
        ei.train_loss = e.at("train_loss");
        ei.train_accuracy = e.at("train_accuracy");
        ei.test_accuracy = e.at("test_accuracy");
        ei.seconds = e.at("seconds");
        ei.samples_per_second = e.at("samples_per_second");
        result.epochs.push_back(ei);
      }
    } catch (const std::exception& e) {
      throw InputError(path, std::string("checkpoint training state is unreadable: ") + e.what());
    }
  }
  if (cb.on_start) cb.on_start(first_epoch);

  // Replicas for the threads after the first (the first uses `model` itself). Nested regions
  // (the engine's own loops) run on one thread inside the per-slice workers.
  const int threads = std::max(1, omp_get_max_threads());
  omp_set_max_active_levels(1);
  std::vector<std::unique_ptr<MnistModel>> replicas;
  for (int t = 1; t < threads; ++t) replicas.push_back(make_mnist_model(cfg, 0));

  const nn::Rng root(opt.seed);
  double run_samples = 0;
  const nn::CrossEntropyOptions ce_opt{opt.label_smoothing};
  using Clock = std::chrono::steady_clock;
  for (int epoch = first_epoch; epoch < opt.epochs; ++epoch) {
    auto t0 = Clock::now();
    std::vector<int> order(n);
    std::iota(order.begin(), order.end(), 0);
    nn::Rng shuffle_rng = root.fork(1000003ull * (epoch + 1));
    shuffle_rng.shuffle(order);
    double loss_sum = 0;
    long correct = 0, seen = 0;
    for (long s = 0; s < steps_per_epoch; ++s) {
      const long global = epoch * steps_per_epoch + s;
      if (opt.max_steps > 0 && global >= opt.max_steps) break;
      const long b0 = s * opt.batch, b1 = std::min<long>(n, b0 + opt.batch);
      std::vector<int> idx(order.begin() + b0, order.begin() + b1), targets;
      for (int i : idx) targets.push_back(train.labels[i]);
      Mat x = image_batch(train, idx);  // [B, rows*cols]
      if (opt.shift > 0) {
        nn::Rng aug = root.fork(0xA06ull << 32 | static_cast<std::uint64_t>(global));
        shift_batch(x, train.rows, train.cols, opt.shift, aug);
      }
      // OpenMP over the batch: thread t runs forward + backward on its slice of the batch with its
      // own replica (same parameter values), then the gradients are summed in thread order, so the
      // result depends only on the thread count.
      const int B = static_cast<int>(idx.size());
      const int nt = std::max(1, std::min(threads, B));
      std::vector<double> part_loss(nt, 0.0);
      std::vector<long> part_correct(nt, 0);
      for (int t = 1; t < nt; ++t) {
        const auto& src = model.params().params();
        const auto& dst = replicas[t - 1]->params().params();
        for (size_t i = 0; i < src.size(); ++i) dst[i]->value = src[i]->value;
      }
#pragma omp parallel for num_threads(nt) schedule(static, 1)
      for (int t = 0; t < nt; ++t) {
        MnistModel& m = t == 0 ? model : *replicas[t - 1];
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
      double batch_loss = 0;
      long batch_correct = 0;
      for (int t = 0; t < nt; ++t) batch_loss += part_loss[t], batch_correct += part_correct[t];
      batch_loss /= B;
      if (!std::isfinite(batch_loss))
        throw TrainingDiverged(fmt::format(
            "training stopped: the loss became {} at epoch {}, step {}{}", batch_loss, epoch + 1, s + 1,
            opt.checkpoint.empty() ? std::string(" (no checkpoint was requested)")
            : epoch > first_epoch || !opt.resume.empty()
                ? "; the last good checkpoint (" + opt.checkpoint.string() + ", after epoch " + std::to_string(epoch) + ") is kept"
                : "; no epoch finished, so no checkpoint was written"));
      for (int t = 1; t < nt; ++t) {
        const auto& dst = model.params().params();
        const auto& src = replicas[t - 1]->params().params();
        for (size_t i = 0; i < src.size(); ++i) dst[i]->grad += src[i]->grad;
      }
      if (opt.clip > 0) nn::clip_grad_norm(model.params(), opt.clip);
      adam.step(opt.constant_lr ? opt.lr : nn::warmup_cosine(global, sched));
      ++result.steps;
      loss_sum += batch_loss * B;
      correct += batch_correct;
      seen += static_cast<long>(idx.size());
      if (cb.on_step) {
        StepInfo si;
        si.epoch = epoch;
        si.step = s + 1;
        si.steps = steps_per_epoch;
        si.samples = seen;
        si.loss = loss_sum / seen;
        si.accuracy = static_cast<double>(correct) / seen;
        si.lr = opt.constant_lr ? opt.lr : nn::warmup_cosine(global, sched);
        cb.on_step(si);
      }
    }
    EpochInfo ei;
    ei.epoch = epoch;
    ei.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    ei.samples_per_second = ei.seconds > 0 ? seen / ei.seconds : 0;
    ei.train_loss = seen ? loss_sum / seen : 0;
    ei.train_accuracy = seen ? static_cast<double>(correct) / seen : 0;
    result.seconds += ei.seconds;
    run_samples += seen;
    if (test.count > 0) ei.test_accuracy = evaluate_mnist(model, test).accuracy();
    result.epochs.push_back(ei);
    if (!opt.checkpoint.empty()) {
      StFile f;
      model.params().save_into(f);
      adam.save_into(f);
      json hist = json::array();
      for (const auto& e : result.epochs)
        hist.push_back({{"epoch", e.epoch}, {"train_loss", e.train_loss}, {"train_accuracy", e.train_accuracy},
                        {"test_accuracy", e.test_accuracy}, {"seconds", e.seconds},
                        {"samples_per_second", e.samples_per_second}});
      f.metadata["attnviz.model"] = "mnist";
      f.metadata["config"] = cfg.to_json();
      f.metadata["train.recipe"] = recipe;
      f.metadata["train.epochs_done"] = std::to_string(epoch + 1);
      f.metadata["train.history"] = hist.dump();
      save_safetensors(opt.checkpoint, f);
    }
    if (cb.on_epoch) cb.on_epoch(ei);
    if (opt.max_steps > 0 && (epoch + 1) * steps_per_epoch >= opt.max_steps) break;
  }
  result.samples_per_second = result.seconds > 0 ? run_samples / result.seconds : 0;
  return result;
}

}  // namespace attnviz::models
