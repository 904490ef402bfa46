// The options every INPUT-taking subcommand shares (--sample, --batch, --tokens, ...).
#pragma once
#include <attnviz/record/import.hpp>

#include <CLI/CLI.hpp>

namespace attnviz::cli {

inline void add_import_options(CLI::App* sub, ImportOptions& opt) {
  sub->add_option("--sample", opt.sample, "which sample of a multi-sample record")->check(CLI::NonNegativeNumber);
  sub->add_option("--batch", opt.batch, "batch entry of a 5-D [layers, batch, heads, q, k] array")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--tokens", opt.tokens_file, "token file (one per line) for self-attention axes");
  sub->add_option("--src-tokens", opt.src_tokens_file, "token file for the source (key) axis");
  sub->add_option("--tgt-tokens", opt.tgt_tokens_file, "token file for the target (query) axis");
}

}  // namespace attnviz::cli
