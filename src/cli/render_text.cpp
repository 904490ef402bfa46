// Placeholder for `text` until its issue lands.
#include "cli/commands.hpp"

#include <attnviz/error.hpp>

namespace attnviz::cli {

void add_render_text(CLI::App& parent) {
  auto* sub = parent.add_subcommand("text", "(not built yet)");
  sub->allow_extras();
  sub->callback([] { throw UsageError("'text' is not built yet in this version"); });
}

}  // namespace attnviz::cli
