// `attnviz record mnist|translate|textcls`: the parent command; each domain adds its subcommand.
#include "cli/commands.hpp"

namespace attnviz::cli {

void add_record(CLI::App& app) {
  auto* sub = app.add_subcommand("record", "run a model on inputs and save an AttentionRecord");
  sub->require_subcommand(1);
  set_example(sub, "attnviz record mnist --model models/vit.safetensors --index 0,7,42 -o digits.safetensors");
  add_record_mnist(*sub);
  add_record_translate(*sub);
  add_record_textcls(*sub);
  add_record_hf(*sub);   // encoder, vit (Hugging Face directories)
}

}  // namespace attnviz::cli
