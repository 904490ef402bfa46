// `attnviz train mnist|translate|textcls`: the parent command; each domain adds its subcommand.
#include "cli/commands.hpp"

namespace attnviz::cli {

void add_train(CLI::App& app) {
  auto* sub = app.add_subcommand("train", "train a model (progress bar, checkpoints, --resume)");
  sub->require_subcommand(1);
  set_example(sub, "attnviz train mnist --epochs 3 --out models/vit.safetensors");
  add_train_mnist(*sub);
  add_train_translate(*sub);
  add_train_textcls(*sub);
}

}  // namespace attnviz::cli
