// One trainer for every model: batches, epochs, the engine's Adam, a warm-up + cosine schedule,
// gradient clipping, seeded shuffling, a progress callback, atomic checkpoints every N steps and
// after every epoch, and a resume that continues bitwise-identically (same seed and thread count).
#pragma once
#include <attnviz/engine/optim.hpp>
#include <attnviz/engine/rng.hpp>
#include <attnviz/models/model.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnviz::train {

struct StepResult {
  double loss = 0;    // mean loss of the batch (what is minimised)
  long count = 0;     // examples (or tokens) the loss averages over
  long correct = 0;   // argmax == target among them
};

// Cuts an order of example indices into consecutive batches of `batch` (the last may be shorter).
std::vector<std::vector<int>> split_batches(const std::vector<int>& order, int batch);

// What a task gives the trainer: its examples, how one batch is computed, how a model is evaluated.
class TrainTask {
 public:
  virtual ~TrainTask() = default;
  virtual long examples() const = 0;
  // The batches of one epoch (indices into the examples). Default: all examples shuffled by
  // Rng(seed).fork(1000003 * (epoch + 1)), cut into batches of `batch` in order.
  virtual std::vector<std::vector<int>> batches(int epoch, std::uint64_t seed, int batch) const;
  // Forward + backward of one batch, adding into the model's parameter gradients (zeroed before).
  // rng: this step's generator (dropout, augmentation), Rng(seed).fork(0xA06 << 32 | global step).
  virtual StepResult step(const std::vector<int>& batch, nn::Rng& rng) = 0;
  // Evaluation after each epoch (empty result = none).
  virtual models::EvalResult evaluate() { return {}; }
};

struct TrainerOptions {
  int epochs = 10;
  int batch = 32;
  float lr = 1e-3f;
  float min_lr = 0.f;            // cosine decay ends here
  long warmup_steps = 0;         // linear warm-up
  bool constant_lr = false;      // no warm-up / cosine
  nn::AdamOptions adam;          // betas, weight decay, decoupled (lr comes from the schedule)
  float clip = 1.0f;             // global-norm gradient clipping (0 = off)
  std::uint64_t seed = 1;
  long max_steps = 0;            // stop after this many optimizer steps in total (0 = epochs)
  std::filesystem::path checkpoint;   // written atomically after every epoch ("" = none)
  long checkpoint_every = 0;          // ... and every N optimizer steps (0 = epochs only)
  std::filesystem::path resume;       // continue from this checkpoint ("" = start fresh)
  // Options that change the numbers beyond the ones above, by their command-line name
  // ("--shift" -> "1", "--threads" -> "2"): a resumed run must use the same values.
  std::map<std::string, std::string> recipe;
  std::map<std::string, std::string> metadata;   // kept in checkpoints (data source, split)
};

struct StepInfo {
  int epoch = 0;                   // 0-based
  long step = 0, steps = 0;        // within the epoch (1-based after the step)
  long global_step = 0;            // optimizer steps so far
  long samples = 0;                // examples done in this epoch
  double loss = 0, accuracy = 0;   // running means over this epoch
  float lr = 0;
};
struct EpochInfo {
  int epoch = 0;
  double train_loss = 0, train_accuracy = 0;
  double seconds = 0, samples_per_second = 0;   // training only (without evaluation)
  models::EvalResult eval;                      // the task's evaluation (may be empty)
};
struct Callbacks {
  std::function<void(int first_epoch, long first_step)> on_start;   // once, where training starts
  std::function<void(const StepInfo&)> on_step;
  std::function<void(const EpochInfo&)> on_epoch;
};

// The loss became NaN/Inf; training stopped and the last checkpoint stays as it was.
class TrainingDiverged : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TrainResult {
  std::vector<EpochInfo> epochs;   // including the ones a resumed checkpoint had done
  long steps = 0;                  // optimizer steps of this run
  double seconds = 0;              // training time of this run (without evaluation)
  double samples_per_second = 0;
};

// Trains model (its parameters, in place) on task. Throws UsageError on bad options,
// InputError(resume path, ...) when the checkpoint is not of this model or was made with other
// options (naming the option), TrainingDiverged on a non-finite loss.
TrainResult train(models::Model& model, TrainTask& task, const TrainerOptions& opt, const Callbacks& cb = {});

}  // namespace attnviz::train
