// Placeholder for `render` until its issue lands.
#include "cli/commands.hpp"

#include <attnviz/error.hpp>

namespace attnviz::cli {

void add_bench_render(CLI::App& parent) {
  auto* sub = parent.add_subcommand("render", "(not built yet)");
  sub->allow_extras();
  sub->callback([] { throw UsageError("'render' is not built yet in this version"); });
}

}  // namespace attnviz::cli
