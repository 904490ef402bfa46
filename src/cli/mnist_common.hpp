// Helpers shared by the MNIST subcommands, the training benchmark and the demo section: the
// training recipe as CLI options, printing a training run, choosing images to record.
#pragma once
#include "cli/commands.hpp"
#include "cli/progress.hpp"

#include <attnviz/models/mnist.hpp>
#include <attnviz/train/tasks.hpp>

#include <fmt/core.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace attnviz::cli {

// Default checkpoint next to the model file: models/vit.safetensors -> models/vit.ckpt.safetensors.
inline std::filesystem::path checkpoint_for(const std::filesystem::path& model) {
  std::filesystem::path p = model;
  std::string stem = p.stem().string();
  return p.replace_filename(stem + ".ckpt.safetensors");
}

// Trains with a progress bar per epoch and one summary line per epoch on stderr.
// wrap (optional) adds to the progress callbacks, e.g. train::with_snapshots.
inline train::TrainResult train_with_progress(models::MnistModel& model, const ImageSet& train, const ImageSet& test,
                                              const train::MnistTrainOptions& opt, bool quiet,
                                              const std::function<train::Callbacks(train::Callbacks)>& wrap = {}) {
  std::unique_ptr<ProgressBar> bar;
  train::Callbacks cb;
  const long n = opt.train_limit > 0 ? std::min<long>(opt.train_limit, train.count) : train.count;
  cb.on_start = [&](int first, long step) {
    if ((first > 0 || step > 0) && !quiet)
      fmt::print(stderr, "resuming at epoch {} of {}, step {}\n", first + 1, opt.epochs, step);
  };
  cb.on_step = [&](const train::StepInfo& s) {
    if (quiet) return;
    if (!bar)
      bar = std::make_unique<ProgressBar>(fmt::format("epoch {}/{}", s.epoch + 1, opt.epochs), n);
    bar->update(s.samples, fmt::format("loss {:.4f} acc {:.2f}% lr {:.2g}", s.loss, 100 * s.accuracy, s.lr));
  };
  cb.on_epoch = [&](const train::EpochInfo& e) {
    if (quiet) return;
    if (bar) bar->finish(fmt::format("loss {:.4f} acc {:.2f}%", e.train_loss, 100 * e.train_accuracy));
    bar.reset();
    fmt::print(stderr, "epoch {}/{}: train loss {:.4f}, train acc {:.2f}%, test acc {:.2f}% ({:.0f} s, {:.0f} samples/s){}\n",
               e.epoch + 1, opt.epochs, e.train_loss, 100 * e.train_accuracy, 100 * (e.eval.has("accuracy") ? e.eval.get("accuracy") : 0.0), e.seconds,
               e.samples_per_second, opt.checkpoint.empty() ? "" : ", checkpoint " + opt.checkpoint.string());
  };
  return train::train_mnist(model, train, test, opt, wrap ? wrap(cb) : cb);
}

}  // namespace attnviz::cli
