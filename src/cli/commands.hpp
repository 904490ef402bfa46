// Registration functions of every subcommand (one file each under src/cli/) and shared CLI state.
#pragma once
#include <CLI/CLI.hpp>

#include <cmath>
#include <filesystem>
#include <string>

namespace attnviz::cli {

// A number option that must be finite and within [lo, hi]. CLI::Range lets NaN through (every
// comparison with NaN is false), so `--threshold nan` or `--vmin nan` would reach the library.
inline CLI::Validator finite_in(double lo = -HUGE_VAL, double hi = HUGE_VAL) {
  return CLI::Validator(
      [lo, hi](std::string& v) -> std::string {
        double x = 0;
        try {
          size_t used = 0;
          x = std::stod(v, &used);
          if (used != v.size()) return "must be a number, not " + v;
        } catch (const std::exception&) {
          return "must be a number, not " + v;
        }
        if (!std::isfinite(x)) return "must be a finite number, not " + v;
        if (x < lo || x > hi) return "must be in " + CLI::detail::to_string(lo) + ".." + CLI::detail::to_string(hi) + ", not " + v;
        return {};
      },
      std::isfinite(lo) ? "FINITE in [" + CLI::detail::to_string(lo) + ", " + CLI::detail::to_string(hi) + "]" : "FINITE");
}

// CLI11's PositiveNumber / NonNegativeNumber print the largest double in full (309 digits) when
// they refuse a value; these say what is wanted in a few words (and refuse NaN and infinity).
inline CLI::Validator number_above(double lo, bool inclusive, const std::string& wanted) {
  return CLI::Validator(
      [lo, inclusive, wanted](std::string& v) -> std::string {
        double x = 0;
        try {
          size_t used = 0;
          x = std::stod(v, &used);
          if (used != v.size()) return "must be " + wanted + ", not " + v;
        } catch (const std::exception&) {
          return "must be " + wanted + ", not " + v;
        }
        if (!std::isfinite(x) || x < lo || (!inclusive && x == lo)) return "must be " + wanted + ", not " + v;
        return {};
      },
      inclusive ? "NONNEGATIVE" : "POSITIVE");
}
inline CLI::Validator positive_number() { return number_above(0, false, "a number above 0"); }
inline CLI::Validator non_negative_number() { return number_above(0, true, "0 or a positive number"); }
// Every file of the CLI includes this header after CLI11: a new option using CLI11's validators with
// the 309-digit message fails to compile instead of slipping through.
#pragma GCC poison PositiveNumber NonNegativeNumber

// Options every subcommand can see (set on the top-level app).
struct Globals {
  std::string data_dir;   // --data / $ATTNVIZ_DATA
  int threads = 0;        // --threads (0 = all cores)
  bool quiet = false;     // --quiet: no progress bars
};
Globals& globals();

// Folder with the MNIST IDX files: --data, then $ATTNVIZ_DATA, then <source>/data/mnist, then ./data/mnist.
std::filesystem::path mnist_dir();

// The shared pretrained models (stories260K, gpt-nano-sort): $ATTNVIZ_MODELS, else ../shared/models
// beside the source checkout.
std::filesystem::path shared_models_dir();

// A parent command (train, eval, record, bench, corpus, render): `name` with one help line and one
// example; each of `children` adds its subcommands (cmd_groups.cpp).
CLI::App* add_group(CLI::App& app, const std::string& name, const std::string& help, const std::string& example,
                    std::initializer_list<void (*)(CLI::App&)> children);

void add_demo(CLI::App& app);
void add_train(CLI::App& app);
void add_eval(CLI::App& app);
void add_record(CLI::App& app);
void add_render(CLI::App& app);
void add_align(CLI::App& app);
void add_inspect(CLI::App& app);
void add_stats(CLI::App& app);      // cmd_stats.cpp (per-head statistics over many records)
void add_bench(CLI::App& app);
void add_corpus(CLI::App& app);
void add_generate(CLI::App& app);   // cmd_generate.cpp (pretrained decoder LMs)

// Domain subcommands under train / eval / record (one file per domain).
void add_train_mnist(CLI::App& train);
void add_eval_mnist(CLI::App& eval);
void add_record_mnist(CLI::App& record);
void add_train_translate(CLI::App& train);
void add_eval_translate(CLI::App& eval);
void add_eval_saliency(CLI::App& eval);   // cmd_eval_saliency.cpp (faithfulness of saliency maps)
void add_record_translate(CLI::App& record);
void add_train_textcls(CLI::App& train);
void add_eval_textcls(CLI::App& eval);
void add_record_textcls(CLI::App& record);
void add_record_hf(CLI::App& record);          // cmd_record_hf.cpp (encoder, vit)

// Children of other parents, each defined in the file of the area that owns it.
void add_bench_kernels(CLI::App& bench);      // bench_kernels.cpp (engine)
void add_bench_render(CLI::App& bench);       // bench_render.cpp (renderer)
void add_bench_train(CLI::App& bench);        // bench_train.cpp (MNIST training)
void add_bench_lm(CLI::App& bench);           // cmd_bench_lm.cpp (decoder LMs)
void add_bench_encoder(CLI::App& bench);      // cmd_bench_encoder.cpp (BERT-base shape)
void add_render_text(CLI::App& render);       // render_text.cpp (text classification view)
void add_corpus_translate(CLI::App& corpus);  // translate.cpp (built-in parallel corpus)
void add_corpus_textcls(CLI::App& corpus);    // textcls.cpp (fortunes dataset)

// Adds a footer "Example:\n  <example>" to a subcommand's --help.
void set_example(CLI::App* sub, const std::string& example);

}  // namespace attnviz::cli
