// `attnviz eval saliency --model M`: the perturbation test (Chefer et al. 2021) and
// deletion/insertion of every saliency method and a random baseline on an MNIST ViT.
#include "cli/commands.hpp"

#include <attnviz/analysis/saliency.hpp>
#include <attnviz/data/idx.hpp>
#include <attnviz/error.hpp>
#include <attnviz/models/faithfulness.hpp>
#include <attnviz/models/mnist.hpp>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <memory>

namespace attnviz::cli {

void add_eval_saliency(CLI::App& parent) {
  struct Opts {
    std::string model, split = "test";
    models::PerturbationOptions p;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = parent.add_subcommand("saliency", "faithfulness of the saliency methods on an MNIST ViT: positive/negative "
                                                "perturbation AUC and deletion/insertion, with a random baseline");
  sub->add_option("--model", o->model, "MNIST ViT model file")->required();
  sub->add_option("--images", o->p.images, "the first N images of the split")->check(positive_number());
  sub->add_option("--steps", o->p.steps, "fractions of patches 0, 1/steps, ..., 1 (10 = 10% steps)")->check(CLI::Range(1, 1000));
  sub->add_option("--seed", o->p.seed, "seed of the random baseline's patch orders");
  sub->add_option("--methods", o->p.methods, "comma-separated: random, " + saliency_method_list())->delimiter(',');
  sub->add_option("--split", o->split, "test or train")->check(CLI::IsMember({"test", "train"}));
  sub->add_flag("--json", o->json, "print JSON (curves included)");
  set_example(sub, "attnviz eval saliency --model models/vit.safetensors --images 500 --json");
  sub->callback([o] {
    for (const auto& m : o->p.methods)
      if (m != "random" && std::find(saliency_method_names().begin(), saliency_method_names().end(), m) ==
                               saliency_method_names().end())
        throw UsageError("--methods: unknown method '" + m + "' (random, " + saliency_method_list() + ")");
    auto model = models::load_mnist_model(o->model);
    ImageSet set = load_mnist(mnist_dir(), o->split);
    auto r = models::perturbation_test(*model, set, o->p);
    if (o->json) {
      nlohmann::json j = {{"model", o->model}, {"images", r.images}, {"seed", o->p.seed}, {"accuracy", r.accuracy},
                          {"fractions", r.fractions}};
      for (const auto& c : r.methods)
        j["methods"].push_back({{"method", c.method}, {"auc_positive", c.auc_positive}, {"auc_negative", c.auc_negative},
                                {"auc_deletion", c.auc_deletion}, {"auc_insertion", c.auc_insertion},
                                {"top_blank", c.top_blank}, {"top_ink", c.top_ink},
                                {"positive", c.positive}, {"negative", c.negative}, {"deletion", c.deletion},
                                {"insertion", c.insertion}});
      fmt::print("{}\n", j.dump(2));
      return;
    }
    fmt::print("{} {} images (accuracy {:.2f}%), {} steps, random seed {}; AUC x100 over the fraction of patches\n",
               r.images, o->split, 100 * r.accuracy, o->p.steps, o->p.seed);
    fmt::print("{:<14} {:>10} {:>10} {:>10} {:>10} {:>11} {:>9}\n", "method", "positive↓", "negative↑", "deletion↓",
               "insertion↑", "top blank", "top ink");
    for (const auto& c : r.methods)
      fmt::print("{:<14} {:>10.2f} {:>10.2f} {:>10.2f} {:>10.2f} {:>10.1f}% {:>8.1f}%\n", c.method, c.auc_positive,
                 c.auc_negative, c.auc_deletion, c.auc_insertion, 100 * c.top_blank, 100 * c.top_ink);
    fmt::print("top blank / top ink: of the patches masked at the first step (the top {:.0f}%), the share that are blank "
               "(masking them changes nothing) and the share of the digit's ink they hold\n",
               100 * r.fractions[std::min<size_t>(1, r.fractions.size() - 1)]);
  });
}

}  // namespace attnviz::cli
