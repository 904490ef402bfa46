// `train ... --snapshot-every N --probe INPUT [--snapshots FILE]`: the probe input's attention recorded
// into one record file while a model trains (train::with_snapshots), for every training task.
#pragma once
#include "cli/commands.hpp"

#include <attnviz/error.hpp>
#include <attnviz/record/record.hpp>
#include <attnviz/train/snapshots.hpp>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace attnviz::cli {

struct SnapshotCli {
  long every = 0;
  std::string probe;   // what the task records: an image number, a sentence, a text
  std::string out;
  std::vector<AttentionRecord> taken;
  bool on() const { return every > 0; }
};

inline void add_snapshot_options(CLI::App* sub, SnapshotCli& s, const std::string& probe_help) {
  sub->add_option("--snapshot-every", s.every, "record the --probe input's attention before training and every N "
                                               "optimizer steps (attention over training; then `render evolution`)")
      ->check(positive_number());
  sub->add_option("--probe", s.probe, probe_help);
  sub->add_option("--snapshots", s.out, "where the snapshots go: one record file, sample k = snapshot k, step in its "
                                        "metadata (default: OUT with .snapshots.safetensors)");
}

// UsageError unless --snapshot-every and --probe come together.
inline void check_snapshot_options(const SnapshotCli& s) {
  if (s.on() == s.probe.empty()) throw UsageError("--snapshot-every and --probe go together");
}

// cb, plus a snapshot of probe() into s.taken when asked.
inline train::Callbacks with_snapshot_options(SnapshotCli& s, train::Callbacks cb, std::function<AttentionRecord()> probe) {
  return s.on() ? train::with_snapshots(std::move(cb), s.every, std::move(probe), &s.taken) : cb;
}

// Writes the snapshots (when asked) next to the model file `model_out`, and says so.
inline void save_snapshot_records(const SnapshotCli& s, const std::filesystem::path& model_out) {
  if (!s.on()) return;
  std::filesystem::path p = s.out.empty() ? std::filesystem::path(model_out).replace_extension(".snapshots.safetensors")
                                          : std::filesystem::path(s.out);
  save_records(p, s.taken);
  fmt::print("{} snapshots of probe {} saved to {}\n", s.taken.size(), s.probe, p.string());
}

}  // namespace attnviz::cli
