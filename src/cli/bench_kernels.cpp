// Placeholder for `kernels` until its issue lands.
#include "cli/commands.hpp"

#include <attnviz/error.hpp>

namespace attnviz::cli {

void add_bench_kernels(CLI::App& parent) {
  auto* sub = parent.add_subcommand("kernels", "(not built yet)");
  sub->allow_extras();
  sub->callback([] { throw UsageError("'kernels' is not built yet in this version"); });
}

}  // namespace attnviz::cli
