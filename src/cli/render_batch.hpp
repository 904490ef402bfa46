// Batch rendering for `attnviz render KIND`: many inputs in one process (INPUT... -o DIR/, or
// --batch-file FILE of "INPUT OUTPUT" lines), on all cores, with a progress bar and one line per failure.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace attnviz::cli {

struct BatchInputs {
  std::vector<std::string> inputs;   // positional INPUT...
  std::string file;                  // --batch-file FILE
  std::string format = "png";        // --format: output format of INPUT... -o DIR/
};

struct BatchJob {
  std::string input, out;
};

// The positional INPUT..., --batch and --format options.
void add_batch_inputs(CLI::App* sub, BatchInputs& b);

// The (input, output) pairs to render. `single` is set when this is the ordinary one-file call
// (one INPUT, -o a file), which keeps its behaviour: errors propagate, "wrote OUT" is printed.
// Several inputs (or one with -o DIR/) need -o to be a folder (ending in '/', or existing when
// there are several): DIR/<input stem>.<format>.
std::vector<BatchJob> batch_jobs(const BatchInputs& b, const std::string& out, bool& single);

// Renders every job on nn::threads() threads (OpenMP, dynamic schedule): a progress bar on stderr
// unless --quiet, one line "attnviz: INPUT: problem" per failed input (the rest still render), then
// a summary; throws InputError ("N of M inputs failed", exit code 2) if any failed.
void run_batch(const std::vector<BatchJob>& jobs, const std::function<void(const BatchJob&)>& render_one);

// nn::threads(): --threads, or every core.
int render_threads();

// True on a thread that is rendering one job of a batch (the one-file "wrote OUT" line is not printed).
bool in_batch();

// Runs render_one(opt) for each input of opt->c.batch: once, on opt itself, for a one-file call;
// else on a copy of opt per job with c.input and c.out set to the job's.
template <class Opt, class F>
void for_each_input(const std::shared_ptr<Opt>& opt, const F& render_one) {
  bool single = false;
  const std::vector<BatchJob> jobs = batch_jobs(opt->c.batch, opt->c.out, single);
  if (single) {
    opt->c.input = jobs.front().input;
    opt->c.paint.threads = render_threads();  // big PNGs: compressed on --threads threads
    render_one(opt);
    return;
  }
  run_batch(jobs, [&](const BatchJob& j) {
    auto one = std::make_shared<Opt>(*opt);
    one->c.input = j.input;
    one->c.paint.threads = 1;  // the batch already keeps every core busy
    one->c.out = j.out;
    render_one(one);
  });
}

}  // namespace attnviz::cli
