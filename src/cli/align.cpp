// `attnviz align`: placeholder until its issue lands.
#include "cli/commands.hpp"

#include <attnviz/error.hpp>

namespace attnviz::cli {

void add_align(CLI::App& app) {
  auto* sub = app.add_subcommand("align", "align (not built yet)");
  sub->allow_extras();
  set_example(sub, "attnviz align --help");
  sub->callback([] { throw UsageError("'align' is not built yet in this version"); });
}

}  // namespace attnviz::cli
