// `attnviz train|eval|record mnist`: train a ViT or pooling classifier on the MNIST IDX files,
// evaluate it (accuracy, per-class accuracy, confusion matrix), and record its attention.
#include "cli/commands.hpp"
#include "cli/mnist_common.hpp"
#include "cli/record_options.hpp"
#include "cli/snapshot_options.hpp"

#include <attnviz/error.hpp>
#include <attnviz/data/idx.hpp>
#include <attnviz/models/mnist.hpp>
#include <attnviz/record/record.hpp>
#include <attnviz/render/render.hpp>
#include <attnviz/train/snapshots.hpp>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <sstream>

namespace attnviz::cli {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct TrainCli {
  models::MnistConfig cfg;
  train::MnistTrainOptions opt;
  std::string out = "models/mnist-vit.safetensors";
  std::string checkpoint, resume, optim = "adamw";
  bool out_set = false;
};

void add_recipe_options(CLI::App* sub, TrainCli& o) {
  sub->add_option("--arch", o.cfg.arch, "vit (transformer) or pool (single-query attention pooling baseline)")
      ->check(CLI::IsMember({"vit", "pool"}));
  sub->add_option("--patch", o.cfg.patch, "patch side in pixels (28 must be a multiple)");
  sub->add_option("--dim", o.cfg.dim, "model width D");
  sub->add_option("--depth", o.cfg.depth, "encoder blocks (vit)");
  sub->add_option("--heads", o.cfg.heads, "attention heads per block (vit)");
  sub->add_option("--mlp", o.cfg.mlp, "MLP hidden width (vit)");
  sub->add_option("--epochs", o.opt.epochs, "passes over the training set")->check(positive_number());
  sub->add_option("--batch", o.opt.batch, "mini-batch size")->check(positive_number());
  sub->add_option("--lr", o.opt.lr, "peak learning rate (after warm-up; cosine decay to --min-lr)");
  sub->add_option("--min-lr", o.opt.min_lr, "final learning rate of the cosine schedule");
  sub->add_option("--warmup", o.opt.warmup_epochs, "linear warm-up length in epochs");
  sub->add_option("--optim", o.optim, "adam or adamw (decoupled weight decay)")->check(CLI::IsMember({"adam", "adamw"}));
  sub->add_option("--wd", o.opt.weight_decay, "weight decay");
  sub->add_option("--clip", o.opt.clip, "clip gradients to this global norm (0 = off)");
  sub->add_option("--shift", o.opt.shift, "augmentation: random shifts of up to N pixels (0 = off)");
  sub->add_option("--label-smoothing", o.opt.label_smoothing, "label smoothing epsilon");
  sub->add_option("--seed", o.opt.seed, "random seed (same seed + threads = same model, bit for bit)");
  sub->add_option("--limit", o.opt.train_limit, "train on the first N images only (0 = all 60,000)");
}

train::MnistTrainOptions finish_recipe(TrainCli& o) {
  train::MnistTrainOptions t = o.opt;
  t.adamw = o.optim == "adamw";
  if (!t.adamw) t.weight_decay = 0;
  return t;
}

std::vector<int> parse_index_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    try {
      size_t used = 0;
      int v = std::stoi(item, &used);
      if (used != item.size() || v < 0) throw std::invalid_argument(item);
      out.push_back(v);
    } catch (const std::exception&) {
      throw UsageError("--index: '" + item + "' is not an image number (use e.g. --index 0,7,42)");
    }
  }
  return out;
}

void print_eval(const models::MnistEvalResult& r, const std::string& model, const std::string& split) {
  fmt::print("model {}  split {}  images {}\n", model, split, r.count);
  fmt::print("accuracy {:.2f}% ({} / {})  mean loss {:.4f}\n\n", 100 * r.accuracy(), r.correct, r.count, r.loss);
  auto pc = r.per_class_accuracy();
  fmt::print("class      ");
  for (int c = 0; c < 10; ++c) fmt::print("{:>7}", c);
  fmt::print("\naccuracy % ");
  for (int c = 0; c < 10; ++c) fmt::print("{:>7.2f}", 100 * pc[c]);
  fmt::print("\n\nconfusion matrix (rows: true class, columns: predicted class)\n      ");
  for (int c = 0; c < 10; ++c) fmt::print("{:>6}", c);
  fmt::print("\n");
  for (int t = 0; t < 10; ++t) {
    fmt::print("{:>6}", t);
    for (int p = 0; p < 10; ++p) fmt::print("{:>6}", r.confusion[t][p]);
    fmt::print("\n");
  }
}

}  // namespace

void add_train_mnist(CLI::App& parent) {
  auto o = std::make_shared<TrainCli>();
  auto* sub = parent.add_subcommand("mnist", "train a ViT (or the pooling baseline) on the MNIST IDX files");
  add_recipe_options(sub, *o);
  sub->add_option("--out,-o", o->out, "model file to write (.safetensors)");
  sub->add_option("--checkpoint", o->checkpoint, "checkpoint written after every epoch (default: OUT with .ckpt)");
  sub->add_option("--checkpoint-every", o->opt.checkpoint_every, "also write the checkpoint every N steps (0 = epochs only)")
      ->check(non_negative_number());
  sub->add_option("--resume", o->resume, "continue from this checkpoint (same options and --threads)");
  auto snap = std::make_shared<SnapshotCli>();
  add_snapshot_options(sub, *snap, "test image number recorded at each snapshot");
  set_example(sub, "attnviz train mnist --epochs 10 --out models/vit.safetensors\n"
                   "  attnviz train mnist --out vit.safetensors --snapshot-every 200 --probe 0   # then: render evolution");
  sub->callback([o, snap] {
    check_snapshot_options(*snap);
    train::MnistTrainOptions opt = finish_recipe(*o);
    fs::path out = o->out;
    if (out.extension() != ".safetensors") throw UsageError("--out must end in .safetensors: " + out.string());
    opt.checkpoint = o->checkpoint.empty() ? checkpoint_for(out) : fs::path(o->checkpoint);
    opt.resume = o->resume;
    fs::path dir = mnist_dir();
    ImageSet train = load_mnist(dir, "train"), test = load_mnist(dir, "test");
    models::MnistConfig cfg = o->cfg;
    cfg.image = train.rows;
    if (train.rows != train.cols) throw InputError(dir.string(), "training images are not square");
    auto model = models::make_mnist_model(cfg, opt.seed);
    if (out.has_parent_path()) fs::create_directories(out.parent_path());
    if (opt.checkpoint.has_parent_path()) fs::create_directories(opt.checkpoint.parent_path());
    const bool quiet = globals().quiet;
    if (!quiet)
      fmt::print(stderr, "training {} ({} parameters) on {} images, testing on {}\n", cfg.to_json(),
                 model->params().count(), opt.train_limit > 0 ? std::min<long>(opt.train_limit, train.count) : train.count,
                 test.count);
    std::function<train::Callbacks(train::Callbacks)> wrap;
    if (snap->on()) {
      const std::vector<int> probe = parse_index_list(snap->probe);
      if (probe.size() != 1 || probe[0] < 0 || probe[0] >= test.count)
        throw UsageError(fmt::format("--probe {}: give one test image number below {}", snap->probe, test.count));
      models::MnistModel* m = model.get();
      wrap = [&, m, probe](train::Callbacks cb) {
        return with_snapshot_options(*snap, cb, [&, m, probe] { return models::record_mnist(*m, test, probe)[0]; });
      };
    }
    auto res = train_with_progress(*model, train, test, opt, quiet, wrap);
    save_snapshot_records(*snap, out);
    const auto& last = res.epochs.back();
    const double test_accuracy = last.eval.has("accuracy") ? last.eval.get("accuracy") : 0.0;
    save_mnist_model(out, *model,
                     {{"test_accuracy", fmt::format("{:.4f}", test_accuracy)},
                      {"epochs", std::to_string(opt.epochs)},
                      {"train_samples_per_second", fmt::format("{:.0f}", res.samples_per_second)}});
    fmt::print("test accuracy {:.2f}% after {} epochs; {:.0f} samples/s; model saved to {}\n",
               100 * test_accuracy, res.epochs.size(), res.samples_per_second, out.string());
  });
}

void add_eval_mnist(CLI::App& parent) {
  struct Opts {
    std::string model, split = "test", heatmap;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = parent.add_subcommand("mnist", "accuracy, per-class accuracy and confusion matrix of an MNIST model");
  sub->add_option("--model,model", o->model,
                  "model file from `attnviz train mnist` (also accepted as the first argument, the old spelling)")
      ->required();
  sub->add_option("--split", o->split, "test or train")->check(CLI::IsMember({"test", "train"}));
  sub->add_flag("--json", o->json, "print JSON instead of tables");
  sub->add_option("--heatmap", o->heatmap, "also render the confusion matrix (.png/.svg/.pdf)");
  set_example(sub, "attnviz eval mnist --model models/vit.safetensors --heatmap confusion.png");
  sub->callback([o] {
    auto model = models::load_mnist_model(o->model);
    ImageSet set = load_mnist(mnist_dir(), o->split);
    auto r = models::evaluate_mnist(*model, set);
    if (o->json) {
      json j{{"model", o->model}, {"split", o->split}, {"count", r.count}, {"correct", r.correct},
             {"accuracy", r.accuracy()}, {"loss", r.loss}, {"per_class_accuracy", r.per_class_accuracy()},
             {"confusion", r.confusion}};
      fmt::print("{}\n", j.dump(2));
    } else {
      print_eval(r, o->model, o->split);
    }
    if (!o->heatmap.empty()) {
      render::render_confusion(r.confusion_rows(),
                               {.title = fmt::format("confusion matrix · {} · {:.2f}%",
                                                     fs::path(o->model).filename().string(), 100 * r.accuracy()),
                                .labels = {}},
                               o->heatmap);
      if (!o->json) fmt::print("confusion heatmap written to {}\n", o->heatmap);
    }
  });
}

void add_record_mnist(CLI::App& parent) {
  struct Opts {
    std::string model, out, index, split = "test";
    int first = 0, misclassified = 0, klass = -1;
    std::vector<std::string> what;   // --record
  };
  auto o = std::make_shared<Opts>();
  auto* sub = parent.add_subcommand("mnist", "record every attention matrix (and its gradient) for MNIST images");
  sub->add_option("--model,model", o->model,
                  "model file from `attnviz train mnist` (also accepted as the first argument, the old spelling)")
      ->required();
  sub->add_option("--out,-o", o->out, "record file to write (.safetensors, one sample per image)")->required();
  sub->add_option("--index", o->index, "comma-separated image numbers, e.g. 0,7,42");
  sub->add_option("--first", o->first, "the first N images (of --class if given); default 16")->check(non_negative_number());
  sub->add_option("--misclassified", o->misclassified, "the first N images the model gets wrong")
      ->check(non_negative_number());
  sub->add_option("--class", o->klass, "only images whose true label is this digit")->check(CLI::Range(0, 9));
  sub->add_option("--split", o->split, "test or train")->check(CLI::IsMember({"test", "train"}));
  // relevance: accepted for the spelling shared with `record textcls|translate`; the ViT records
  // its gradients and relevance anyway (render overlay / eval saliency --method chefer rely on it).
  add_record_what(sub, o->what, true, true);   // the ViT only
  set_example(sub, "attnviz record mnist --model models/vit.safetensors --index 0,7,42 -o digits.safetensors");
  sub->callback([o] {
    auto model = models::load_mnist_model(o->model);
    const models::RecordOptions what = record_what(o->what);
    if (what.relevance && model->config().arch != "vit")   // the model file cannot give it: exit 2
      throw InputError(o->model, "--record relevance needs a ViT; this is the " + model->config().arch + " model");
    if ((what.norms || what.mixing) && model->config().arch != "vit")
      throw UsageError("--record " + o->what.front() + " needs a ViT (" + o->model + " is the " + model->config().arch +
                       " model)");
    ImageSet set = load_mnist(mnist_dir(), o->split);
    std::vector<int> idx;
    if (!o->index.empty()) {
      idx = parse_index_list(o->index);
      if (idx.empty()) throw UsageError("--index lists no images");
    } else {
      const models::ExampleSelection sel{.first = o->first > 0 ? o->first : 16, .misclassified = o->misclassified,
                                         .klass = o->klass};
      idx = models::select_examples(set, sel, sel.misclassified > 0 ? models::evaluate_mnist(*model, set).predictions
                                                                     : std::vector<int>{});
    }
    auto recs = models::record_mnist(*model, set, idx, fs::path(o->model).stem().string(), what);
    save_records(o->out, recs);
    int wrong = 0;
    for (auto& r : recs) wrong += r.metadata.at("label") != r.metadata.at("prediction");
    fmt::print("recorded {} images ({} misclassified), {} attention tensors each, to {}\n", recs.size(), wrong,
               recs.front().tensors.size(), o->out);
  });
}

}  // namespace attnviz::cli
