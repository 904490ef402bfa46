// `attnviz train|eval|record mnist`: placeholder until the mnist models land.
#include "cli/commands.hpp"

#include <attnviz/error.hpp>

namespace attnviz::cli {

namespace {
void pending(CLI::App& parent, const char* verb) {
  auto* sub = parent.add_subcommand("mnist", std::string(verb) + " mnist models (not built yet)");
  sub->allow_extras();
  sub->callback([] { throw UsageError("mnist models are not built yet in this version"); });
}
}  // namespace

void add_train_mnist(CLI::App& p) { pending(p, "train"); }
void add_eval_mnist(CLI::App& p) { pending(p, "evaluate"); }
void add_record_mnist(CLI::App& p) { pending(p, "record"); }

}  // namespace attnviz::cli
