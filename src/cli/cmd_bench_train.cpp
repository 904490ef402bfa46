// `attnviz bench train`: training throughput (samples/s) of the MNIST ViT on the reference recipe
// (Adam, constant lr, no clipping or augmentation), for side-by-side runs with PyTorch.
#include "cli/commands.hpp"

#include <attnviz/models/mnist.hpp>
#include <attnviz/train/tasks.hpp>
#include <attnviz/engine/rng.hpp>

#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <omp.h>

#include <memory>

namespace attnviz::cli {

void add_bench_train(CLI::App& parent) {
  struct Opts {
    models::MnistConfig cfg;
    int steps = 100, warmup = 5, batch = 64;
    float lr = 1e-3f;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  o->cfg.depth = 2;  // the reference architecture of the PyTorch comparison
  auto* sub = parent.add_subcommand("train", "training throughput of the MNIST ViT (samples/s)");
  sub->add_option("--steps", o->steps, "timed optimizer steps")->check(positive_number());
  sub->add_option("--warmup-steps", o->warmup, "untimed steps first")->check(non_negative_number());
  sub->add_option("--batch", o->batch, "batch size")->check(positive_number());
  sub->add_option("--patch", o->cfg.patch, "patch side");
  sub->add_option("--dim", o->cfg.dim, "model width");
  sub->add_option("--depth", o->cfg.depth, "encoder blocks");
  sub->add_option("--heads", o->cfg.heads, "heads");
  sub->add_option("--mlp", o->cfg.mlp, "MLP width");
  sub->add_option("--lr", o->lr, "Adam learning rate (constant)");
  sub->add_flag("--json", o->json, "print JSON");
  set_example(sub, "attnviz --threads 2 bench train --steps 200 --json");
  sub->callback([o] {
    // Random digits-shaped data: throughput does not depend on the pixel values.
    const long n = static_cast<long>(o->steps + o->warmup) * o->batch;
    ImageSet set;
    set.count = static_cast<int>(n);
    set.rows = set.cols = o->cfg.image;
    set.pixels.resize(static_cast<size_t>(n) * set.rows * set.cols);
    set.labels.resize(n);
    nn::Rng rng(7);
    for (auto& p : set.pixels) p = rng.uniform();
    for (auto& l : set.labels) l = rng.below(10);
    auto model = models::make_mnist_model(o->cfg, 1);
    train::MnistTrainOptions t;
    t.epochs = 1;
    t.batch = o->batch;
    t.lr = o->lr;
    t.adamw = false;
    t.weight_decay = 0;
    t.clip = 0;
    t.shift = 0;
    t.constant_lr = true;
    ImageSet none;
    if (o->warmup > 0) {
      t.max_steps = o->warmup;
      train::train_mnist(*model, set, none, t);
    }
    t.max_steps = o->steps;
    auto r = train::train_mnist(*model, set, none, t);
    const int threads = omp_get_max_threads();
    if (o->json) {
      nlohmann::json j{{"samples_per_second", r.samples_per_second}, {"steps", r.steps}, {"batch", o->batch},
                       {"seconds", r.seconds}, {"threads", threads}, {"config", nlohmann::json::parse(o->cfg.to_json())},
                       {"parameters", model->params().count()}};
      fmt::print("{}\n", j.dump());
    } else {
      fmt::print("attnviz ViT training: {:.0f} samples/s ({} steps of batch {}, {:.2f} s, {} threads, {} parameters)\n",
                 r.samples_per_second, r.steps, o->batch, r.seconds, threads, model->params().count());
    }
  });
}

}  // namespace attnviz::cli
