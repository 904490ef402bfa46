// Batch rendering: jobs from INPUT... -o DIR/ or --batch-file FILE, run in parallel with a progress bar.
#include "cli/render_batch.hpp"

#include "cli/commands.hpp"
#include "cli/progress.hpp"

#include <attnviz/engine/ops.hpp>
#include <attnviz/error.hpp>
#include <attnviz/io/printable.hpp>

#include <fmt/core.h>
#include <omp.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

namespace attnviz::cli {

namespace fs = std::filesystem;

namespace {
thread_local bool t_in_batch = false;

bool is_folder_target(const std::string& out) {
  if (out.empty()) return false;
  if (out.back() == '/') return true;
  std::error_code ec;
  return fs::is_directory(out, ec);
}
}  // namespace

bool in_batch() { return t_in_batch; }

int render_threads() { return nn::threads(); }

void add_batch_inputs(CLI::App* sub, BatchInputs& b) {
  sub->add_option("input", b.inputs,
                  "record(s) or importable file(s) (.safetensors, .npy, .npz, .json, .csv/.tsv); several need -o DIR/");
  sub->add_option("--batch-file", b.file,
                  "file of lines 'INPUT OUTPUT' (tab or spaces; # comments) rendered in one process on all cores");
  sub->add_option("--format", b.format, "output format when -o is a folder: png, svg or pdf")
      ->check(CLI::IsMember({"png", "svg", "pdf"}));
}

std::vector<BatchJob> batch_jobs(const BatchInputs& b, const std::string& out, bool& single) {
  single = false;
  std::vector<BatchJob> jobs;
  if (!b.file.empty()) {
    if (!b.inputs.empty()) throw UsageError("give INPUT files or --batch-file FILE, not both");
    std::ifstream in(b.file);
    if (!in) throw InputError(b.file, "cannot be opened");
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const size_t first = line.find_first_not_of(" \t");
      if (first == std::string::npos || line[first] == '#') continue;
      // A tab separates paths that contain spaces; otherwise any whitespace does.
      std::string input, output, rest;
      const size_t tab = line.find('\t', first);
      if (tab != std::string::npos) {
        input = line.substr(first, tab - first);
        output = line.substr(line.find_first_not_of(" \t", tab) == std::string::npos ? line.size()
                                                                                      : line.find_first_not_of(" \t", tab));
        while (!output.empty() && (output.back() == ' ' || output.back() == '\t')) output.pop_back();
        if (output.find('\t') != std::string::npos) output.clear();
      } else {
        std::istringstream ls(line);
        ls >> input >> output;
        if (ls >> rest) output.clear();
      }
      if (input.empty() || output.empty())
        throw InputError(b.file, fmt::format("line {}: expected 'INPUT OUTPUT' (two paths), found '{}'", n, line));
      jobs.push_back({input, output});
    }
    if (jobs.empty()) throw InputError(b.file, "lists no 'INPUT OUTPUT' line");
    return jobs;
  }
  if (b.inputs.empty()) throw UsageError("give an INPUT file (or several with -o DIR/, or --batch-file FILE)");
  if (out.empty()) throw UsageError("-o/--out is required (a file, or a folder DIR/ for several inputs)");
  // One input and -o naming an existing folder (without the trailing '/') stays a one-file call,
  // which refuses to write over a folder.
  if (b.inputs.size() == 1 && out.back() != '/') {
    single = true;
    return {{b.inputs.front(), out}};
  }
  if (!is_folder_target(out))
    throw UsageError(fmt::format("-o '{}': with {} inputs, -o must be a folder (end it with '/')", out, b.inputs.size()));
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) throw InputError(out, "cannot create the output folder: " + ec.message());
  std::map<std::string, std::string> seen;   // output -> input, to refuse two inputs with one name
  for (const auto& in : b.inputs) {
    const std::string o = (fs::path(out) / (fs::path(in).stem().string() + "." + b.format)).string();
    auto [it, fresh] = seen.emplace(o, in);
    if (!fresh) throw UsageError(fmt::format("inputs '{}' and '{}' would both be written to '{}'", it->second, in, o));
    jobs.push_back({in, o});
  }
  return jobs;
}

void run_batch(const std::vector<BatchJob>& jobs, const std::function<void(const BatchJob&)>& render_one) {
  const long n = static_cast<long>(jobs.size());
  const int t = static_cast<int>(std::min<long>(nn::threads(), n));
  ProgressBar bar("render", n, !globals().quiet);
  std::vector<std::string> errors(jobs.size());
  long done = 0, failed = 0;
  std::mutex mu;
#pragma omp parallel for schedule(dynamic, 1) num_threads(std::max(1, t))
  for (long i = 0; i < n; ++i) {
    t_in_batch = true;
    std::string err;
    try {
      render_one(jobs[i]);
    } catch (const std::bad_alloc&) {
      err = "out of memory";
    } catch (const std::exception& e) {
      err = e.what();
    }
    t_in_batch = false;
    std::lock_guard<std::mutex> lock(mu);
    ++done;
    if (!err.empty()) {
      ++failed;
      // Messages usually name the file already; otherwise say which input failed.
      errors[i] = err.find(jobs[i].input) != std::string::npos ? err : jobs[i].input + ": " + err;
    }
    if (done < n) bar.update(done, failed ? fmt::format("{} failed", failed) : "");   // finish() draws the last
  }
  bar.finish(failed ? fmt::format("{} failed", failed) : "");
  for (const auto& e : errors)
    if (!e.empty()) fmt::print(stderr, "attnviz: {}\n", printable_for_terminal(e));
  if (failed) throw InputError("", fmt::format("{} of {} inputs failed (the other {} were written)", failed, n, n - failed));
  if (!globals().quiet) fmt::print("wrote {} files\n", n);
}

}  // namespace attnviz::cli
