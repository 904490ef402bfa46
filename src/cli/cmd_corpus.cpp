// `attnviz corpus translate|textcls`: write a built-in dataset as TSV so people can look at it.
#include "cli/commands.hpp"

namespace attnviz::cli {

void add_corpus(CLI::App& app) {
  auto* sub = app.add_subcommand("corpus", "write a built-in dataset (parallel corpus, fortunes) as TSV");
  sub->require_subcommand(1);
  set_example(sub, "attnviz corpus translate --synthetic 1000 -o corpus.tsv");
  add_corpus_translate(*sub);
  add_corpus_textcls(*sub);
}

}  // namespace attnviz::cli
