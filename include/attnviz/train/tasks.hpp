// The three training tasks on the one trainer: MNIST classifiers, text classifiers, translators.
// Each fills TrainerOptions from its own defaults and runs train() with its TrainTask.
#pragma once
#include <attnviz/data/idx.hpp>
#include <attnviz/models/mnist.hpp>
#include <attnviz/models/textcls.hpp>
#include <attnviz/models/translator.hpp>
#include <attnviz/train/trainer.hpp>

namespace attnviz::train {

// ---- MNIST ----------------------------------------------------------------------------------
struct MnistTrainOptions {
  int epochs = 10;
  int batch = 64;
  float lr = 2e-3f;
  float min_lr = 1e-5f;
  float weight_decay = 0.05f;    // AdamW decoupled decay (0 with adamw = plain Adam)
  bool adamw = true;
  float warmup_epochs = 0.5f;    // linear warm-up, then cosine decay to min_lr
  float clip = 1.0f;             // global-norm gradient clipping (0 = off)
  float label_smoothing = 0.f;
  int shift = 1;                 // augmentation: random shifts of up to this many pixels (0 = off)
  std::uint64_t seed = 1;
  long train_limit = 0;          // use only the first N training images (0 = all)
  std::filesystem::path checkpoint;   // written atomically after every epoch ("" = none)
  long checkpoint_every = 0;          // ... and every N steps (0 = epochs only)
  std::filesystem::path resume;       // continue from this checkpoint ("" = start fresh)
  bool constant_lr = false;      // no warm-up / cosine (used by the PyTorch comparison)
  long max_steps = 0;            // stop after this many optimizer steps in total (0 = epochs)
};

// OpenMP over the batch: each thread runs forward + backward on its slice with its own replica
// and the gradients are summed in thread order, so the result depends on the thread count, which
// is part of the recipe (a resume with another --threads is refused). Evaluates on test after
// every epoch (metrics "accuracy", "loss") unless test is empty.
TrainResult train_mnist(models::MnistModel& model, const ImageSet& train, const ImageSet& test,
                        const MnistTrainOptions& opt, const Callbacks& cb = {});

// ---- text classification --------------------------------------------------------------------
struct TextTrainOptions {
  int epochs = 20;
  int batch = 32;
  float lr = 2e-3f;
  float min_lr = 1e-4f;
  float weight_decay = 0.01f;     // AdamW decoupled decay
  float warmup_epochs = 1.f;      // linear warm-up, then cosine decay to min_lr
  float clip = 1.0f;              // global-norm gradient clipping (0 = off)
  std::uint64_t seed = 1;         // shuffling and dropout (initialisation is the model's)
  std::filesystem::path checkpoint;   // written atomically after every epoch ("" = none)
  long checkpoint_every = 0;          // ... and every N steps (0 = epochs only)
  std::filesystem::path resume;       // continue from this checkpoint ("" = start fresh)
  std::map<std::string, std::string> extra;   // metadata stored in checkpoints (data, split)
};

// Evaluates on eval after every epoch ("accuracy", "macro_f1", "loss") unless it is empty.
TrainResult train_textcls(models::TextClassifier& model, const TextDataset& train, const TextDataset& eval,
                          const TextTrainOptions& opt, const Callbacks& cb = {});

// ---- translation ----------------------------------------------------------------------------
struct TranslateTrainOptions {
  int epochs = 12;
  int batch = 32;
  float lr = 3e-3f;
  float min_lr_ratio = 0.05f;   // cosine decay to lr * ratio
  int warmup = 100;             // steps
  float clip = 1.0f;            // global gradient norm
  std::uint64_t seed = 1;       // batch order and dropout
  std::filesystem::path checkpoint;   // written atomically after every epoch ("" = none)
  long checkpoint_every = 0;          // ... and every N steps (0 = epochs only)
  std::filesystem::path resume;       // continue from this checkpoint ("" = start fresh)
  std::map<std::string, std::string> extra;   // metadata stored in checkpoints
};

// Teacher-forced training; batches of similar source length (models::make_batches). Loss and
// accuracy are per target token. No evaluation between epochs.
TrainResult train_translator(models::Translator& model, const std::vector<models::Example>& data,
                             const TranslateTrainOptions& opt, const Callbacks& cb = {});

}  // namespace attnviz::train
