// `attnviz inspect INPUT`: tensor shapes, tokens, per-head entropy, top-3 keys of small tensors,
// and how many NaN/Inf weights there are and where.
#include "cli/commands.hpp"
#include "cli/input_options.hpp"

#include <attnviz/io/gguf.hpp>
#include <attnviz/models/hf.hpp>
#include <attnviz/io/printable.hpp>
#include <attnviz/record/import.hpp>
#include <attnviz/record/nonfinite.hpp>
#include <attnviz/record/stats.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>

#include <fmt/core.h>
#include <fmt/format.h>

#include <memory>

namespace attnviz::cli {

namespace {

// Shortens a token to at most n code points (UTF-8 aware), marking the cut with an ellipsis;
// control characters and bidi overrides from the file are shown escaped (issue 14 item 12).
std::string shorten(const std::string& s, size_t n) {
  size_t count = 0, i = 0;
  while (i < s.size()) {
    if (count == n) return printable_for_terminal(s.substr(0, i)) + "…";
    unsigned char c = static_cast<unsigned char>(s[i]);
    i += c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    ++count;
  }
  return printable_for_terminal(s);
}

std::string token_label(const AttentionRecord& r, const std::string& axis, int i) {
  const auto* tok = r.axis_tokens(axis);
  if (tok && i < static_cast<int>(tok->size())) return fmt::format("{}:{}", i, shorten((*tok)[i], 12));
  return fmt::format("#{}", i);
}

// The k largest finite weights of one query row (NaN/Inf are reported separately; they would
// break the ordering a sort needs).
std::vector<std::pair<int, float>> top_finite_keys(const AttentionTensor& t, int h, int q, int k) {
  std::vector<std::pair<int, float>> row;
  for (int j = 0; j < t.keys; ++j)
    if (std::isfinite(t.at(h, q, j))) row.emplace_back(j, t.at(h, q, j));
  k = std::min<int>(k, static_cast<int>(row.size()));
  std::partial_sort(row.begin(), row.begin() + k, row.end(),
                    [](auto& a, auto& b) { return a.second > b.second || (a.second == b.second && a.first < b.first); });
  row.resize(k);
  return row;
}

void print_nonfinite(const AttentionRecord& r, const AttentionTensor& t) {
  const NonFiniteReport nf = find_nonfinite(t, 5);
  if (nf.total() == 0) return;
  std::string where;
  for (const auto& p : nf.first)
    where += fmt::format("{}h{} q={} k={} ({})", where.empty() ? "" : ", ", p.head,
                         token_label(r, t.query_axis, p.query), token_label(r, t.key_axis, p.key),
                         nonfinite_name(p.value));
  fmt::print("  WARNING non-finite weights: {} of {} ({} NaN, {} +Inf, {} -Inf); first: {}{}\n", nf.total(),
             t.data.size(), nf.nan, nf.pos_inf, nf.neg_inf, where, nf.total() > nf.first.size() ? ", ..." : "");
}

void print_record(const AttentionRecord& r, bool all_rows) {
  for (const auto& [k, v] : r.metadata) fmt::print("meta  {} = {}\n", k, shorten(v, 60));
  for (const auto& [axis, tok] : r.tokens) {
    std::string line;
    for (size_t i = 0; i < tok.size() && i < 40; ++i) line += (i ? " " : "") + shorten(tok[i], 12);
    if (tok.size() > 40) line += fmt::format(" … (+{} more)", tok.size() - 40);
    fmt::print("tokens {} ({}): {}\n", axis, tok.size(), line);
  }
  if (r.image)
    fmt::print("image [{}, {}], patch grid {}x{}, {} prefix token(s)\n", r.image->height, r.image->width,
               r.image->patch_rows, r.image->patch_cols, r.image->prefix_tokens);
  for (const auto& t : r.tensors) {
    fmt::print("tensor {}  [{}, {}, {}]  queries:{} keys:{}{}{}\n", t.name, t.heads, t.queries, t.keys,
               t.query_axis.empty() ? "-" : t.query_axis, t.key_axis.empty() ? "-" : t.key_axis,
               r.find_gradient(t.name) ? "  (+gradient)" : "", r.find_relevance(t.name) ? "  (+relevance)" : "");
    print_nonfinite(r, t);
    if (const ZeroLines z = zero_lines(t); z.rows || z.cols)
      fmt::print("  all-zero (masked padding?): {} query row(s) ({} at the end), {} key column(s) ({} at the end); "
                 "--crop auto drops those at the end\n",
                 z.rows, z.trailing_rows, z.cols, z.trailing_cols);
    auto ent = head_entropy(t);
    std::string e;
    for (int h = 0; h < t.heads; ++h) e += fmt::format("{}h{}={:.3f}", h ? " " : "", h, ent[h]);
    fmt::print("  mean entropy (nats): {}\n", e);
    const bool small = t.queries <= 16 && t.keys <= 64;
    if (small || all_rows) {
      for (int h = 0; h < t.heads; ++h) {
        for (int q = 0; q < t.queries; ++q) {
          std::string top;
          for (auto [k, w] : top_finite_keys(t, h, q, 3)) top += fmt::format("  {} {:.3f}", token_label(r, t.key_axis, k), w);
          fmt::print("  h{} {:>16} ->{}\n", h, token_label(r, t.query_axis, q), top);
        }
      }
    } else {
      fmt::print("  (top keys per query not printed: over 16 queries or 64 keys; --all-rows prints them)\n");
    }
  }
}

}  // namespace

void add_inspect(CLI::App& app) {
  struct Opts {
    std::string input;
    ImportOptions imp;
    bool all_rows = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("inspect", "print tensor shapes, tokens, per-head entropy and top attended keys");
  sub->add_option("INPUT", o->input, "record, importable file (.safetensors, .npy, .npz, .json, .csv/.tsv), GGUF model or Hugging Face model directory")->required();
  add_import_options(sub, o->imp);
  sub->add_flag("--all-rows", o->all_rows, "print top keys for every query even of large tensors");
  set_example(sub, "attnviz inspect samples/alignment_6x7.safetensors");
  sub->callback([o] {
    // A Hugging Face model directory: config, weights, the family's checks, tokenizer.
    if (models::is_hf_dir(o->input)) {
      fmt::print("{}: {}", o->input, models::describe_hf_dir(o->input));
      return;
    }
    // A GGUF model (detected by its magic): architecture, sizes, tensor types, tokenizer, tensors.
    if (std::ifstream in(o->input, std::ios::binary); in) {
      std::string head(4, '\0');
      if (in.read(head.data(), 4) && looks_like_gguf(head)) {
        fmt::print("{}: {}", o->input, describe_gguf(GgufFile::open(o->input)));
        return;
      }
    }
    auto records = import_records(o->input, o->imp);
    fmt::print("{}: {} sample(s)\n", o->input, records.size());
    // The arrays of an .npz / keys of a JSON are tensors of one sample: --tensor picks them, not --sample.
    if (records.size() == 1 && records[0].tensors.size() > 1) {
      std::string names;
      for (const auto& t : records[0].tensors) names += (names.empty() ? "" : ", ") + t.name;
      fmt::print("{} tensors (pick one with --tensor): {}\n", records[0].tensors.size(), names);
    }
    for (size_t i = 0; i < records.size(); ++i) {
      if (records.size() > 1) {
        if (static_cast<int>(i) != o->imp.sample && i >= 3) continue;
        fmt::print("--- sample {}\n", i);
      }
      print_record(records[i], o->all_rows);
    }
    // One summary line, so a script can grep for it.
    std::size_t bad = 0, total = 0;
    for (const auto& r : records)
      for (const auto& t : r.tensors) bad += find_nonfinite(t, 0).total(), total += t.data.size();
    if (bad) fmt::print("non-finite weights: {} of {} (NaN/Inf kept as they are; see the WARNING lines)\n", bad, total);
  });
}

}  // namespace attnviz::cli
