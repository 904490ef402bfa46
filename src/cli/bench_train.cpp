// Placeholder for `train` until its issue lands.
#include "cli/commands.hpp"

#include <attnviz/error.hpp>

namespace attnviz::cli {

void add_bench_train(CLI::App& parent) {
  auto* sub = parent.add_subcommand("train", "(not built yet)");
  sub->allow_extras();
  sub->callback([] { throw UsageError("'train' is not built yet in this version"); });
}

}  // namespace attnviz::cli
