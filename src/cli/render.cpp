// `attnviz render heatmap|grid|lines|overlay|text`: placeholder parent until the renderer lands.
#include "cli/commands.hpp"

namespace attnviz::cli {

void add_render(CLI::App& app) {
  auto* sub = app.add_subcommand("render", "draw a record: heatmap | grid | lines | overlay | text");
  sub->require_subcommand(1);
  set_example(sub, "attnviz render heatmap samples/alignment_6x7.safetensors -o heat.png");
  add_render_text(*sub);
}

}  // namespace attnviz::cli
