// `attnviz eval mnist|translate|textcls`: the parent command; each domain adds its subcommand.
#include "cli/commands.hpp"

namespace attnviz::cli {

void add_eval(CLI::App& app) {
  auto* sub = app.add_subcommand("eval", "evaluate a model: accuracy, BLEU, AER, as a table or --json");
  sub->require_subcommand(1);
  set_example(sub, "attnviz eval mnist --model models/vit.safetensors --json");
  add_eval_mnist(*sub);
  add_eval_translate(*sub);
  add_eval_saliency(*sub);
  add_eval_textcls(*sub);
}

}  // namespace attnviz::cli
