// `attnviz train|eval|record translate`: placeholder until the translate models land.
#include "cli/commands.hpp"

#include <attnviz/error.hpp>

namespace attnviz::cli {

namespace {
void pending(CLI::App& parent, const char* verb) {
  auto* sub = parent.add_subcommand("translate", std::string(verb) + " translate models (not built yet)");
  sub->allow_extras();
  sub->callback([] { throw UsageError("translate models are not built yet in this version"); });
}
}  // namespace

void add_train_translate(CLI::App& p) { pending(p, "train"); }
void add_eval_translate(CLI::App& p) { pending(p, "evaluate"); }
void add_record_translate(CLI::App& p) { pending(p, "record"); }

}  // namespace attnviz::cli

namespace attnviz::cli {
void add_corpus_translate(CLI::App& p) {
  auto* sub = p.add_subcommand("translate", "(not built yet)");
  sub->allow_extras();
  sub->callback([] { throw UsageError("'corpus translate' is not built yet in this version"); });
}
}  // namespace attnviz::cli
