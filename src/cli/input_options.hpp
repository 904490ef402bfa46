// The options every INPUT-taking subcommand shares (--sample, --batch, --tokens, ...).
#pragma once
#include <attnviz/record/import.hpp>

#include <CLI/CLI.hpp>

namespace attnviz::cli {

inline void add_import_options(CLI::App* sub, ImportOptions& opt) {
  sub->add_option("--sample", opt.sample, "which sample of a multi-sample record")->check(non_negative_number());
  sub->add_option("--batch", opt.batch, "batch entry of a 5-D [layers, batch, heads, q, k] array")
      ->check(non_negative_number());
  sub->add_option("--tokens", opt.tokens_file, "token file (one per line) for self-attention axes");
  sub->add_option("--src-tokens", opt.src_tokens_file, "token file for the source (key) axis");
  sub->add_option("--tgt-tokens", opt.tgt_tokens_file, "token file for the target (query) axis");
  sub->add_flag("--transpose", opt.transpose, "the file stores keys x queries (e.g. LAS speech attention): swap them");
  sub->add_option("--crop", opt.crop,
                  "auto: drop all-zero (padding) rows/columns at the end of each axis; Q,K: keep the first Q queries "
                  "and K keys");
  sub->add_option("--key", opt.key, "JSON: the key holding the attention (e.g. attn_dists)");
  sub->add_option("--tokens-key", opt.tokens_key, "JSON/npz: the key of the tokens of self-attention");
  sub->add_option("--src-key", opt.src_key, "JSON/npz: the key of the source (key-axis) tokens (e.g. article_lst)");
  sub->add_option("--tgt-key", opt.tgt_key, "JSON/npz: the key of the target (query-axis) tokens (e.g. decoded_lst)");
  sub->add_flag("--merge-subwords", opt.merge_subwords,
                "WordPiece/BPE pieces to words: attention summed over a word's key pieces, averaged over its query pieces");
}

}  // namespace attnviz::cli
