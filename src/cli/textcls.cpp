// `attnviz train|eval|record textcls`: placeholder until the textcls models land.
#include "cli/commands.hpp"

#include <attnviz/error.hpp>

namespace attnviz::cli {

namespace {
void pending(CLI::App& parent, const char* verb) {
  auto* sub = parent.add_subcommand("textcls", std::string(verb) + " textcls models (not built yet)");
  sub->allow_extras();
  sub->callback([] { throw UsageError("textcls models are not built yet in this version"); });
}
}  // namespace

void add_train_textcls(CLI::App& p) { pending(p, "train"); }
void add_eval_textcls(CLI::App& p) { pending(p, "evaluate"); }
void add_record_textcls(CLI::App& p) { pending(p, "record"); }

}  // namespace attnviz::cli

namespace attnviz::cli {
void add_corpus_textcls(CLI::App& p) {
  auto* sub = p.add_subcommand("textcls", "(not built yet)");
  sub->allow_extras();
  sub->callback([] { throw UsageError("'corpus textcls' is not built yet in this version"); });
}
}  // namespace attnviz::cli
