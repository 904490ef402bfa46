// attnviz entry point: builds the CLI11 app, runs a subcommand, maps errors to exit codes
// (0 ok, 1 usage error, 2 bad input or I/O error).
#include "cli/commands.hpp"

#include <attnviz/error.hpp>
#include <attnviz/engine/ops.hpp>
#include <attnviz/io/limits.hpp>
#include <attnviz/io/printable.hpp>
#include <attnviz/render/render_info.hpp>

#include <fmt/core.h>
#include <Eigen/Core>

#include <algorithm>
#include <cstdlib>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <thread>
#include <exception>
#include <string_view>

namespace attnviz::cli {

Globals& globals() {
  static Globals g;
  return g;
}

std::filesystem::path mnist_dir() {
  namespace fs = std::filesystem;
  if (!globals().data_dir.empty()) return fs::path(globals().data_dir);
  if (const char* env = std::getenv("ATTNVIZ_DATA"); env && *env) return fs::path(env);
  fs::path src = fs::path(ATTNVIZ_SOURCE_DIR) / "data" / "mnist";
  if (fs::exists(src)) return src;
  return fs::path("data") / "mnist";
}

std::filesystem::path shared_models_dir() {
  if (const char* env = std::getenv("ATTNVIZ_MODELS"); env && *env) return env;
  return std::filesystem::path(ATTNVIZ_SOURCE_DIR).parent_path() / "shared" / "models";
}

void set_example(CLI::App* sub, const std::string& example) { sub->footer("\nExample:\n  " + example); }

namespace {

struct Command {
  const char* name;
  void (*add)(CLI::App&);
};
// In the order of `attnviz --help`.
constexpr Command kCommands[] = {{"demo", add_demo},   {"train", add_train},     {"eval", add_eval},
                                 {"record", add_record}, {"render", add_render}, {"align", add_align},
                                 {"inspect", add_inspect}, {"stats", add_stats}, {"bench", add_bench},
                                 {"corpus", add_corpus}, {"generate", add_generate}};

// The command a call names, or nullptr to build them all. Building every subcommand's options
// (~1,000 CLI11 options, each a few strings and a name lookup among its siblings) was a measurable
// part of a 30 ms `attnviz render` process; a call runs one top-level command, so only that one's
// tree is built. Only the global options (below) may come before the command name; anything else
// there (no command: --help, --version; an unknown option or command) builds the whole tree, so
// help and error messages are those of the full CLI.
const Command* selected_command(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--data" || a == "--threads" || a == "--max-mib") {
      ++i;  // its value
      continue;
    }
    if (a == "--quiet" || a.starts_with("--data=") || a.starts_with("--threads=") || a.starts_with("--max-mib="))
      continue;
    for (const Command& c : kCommands)
      if (a == c.name) return &c;
    return nullptr;
  }
  return nullptr;
}

}  // namespace

}  // namespace attnviz::cli

int main(int argc, char** argv) {
  using namespace attnviz::cli;
#if defined(__GLIBC__)
  // Training frees and reallocates the same [B*T, D] activations every step. With glibc's
  // adaptive thresholds the heap top was trimmed and regrown ~50 times a step (brk + page faults:
  // 1.1 s of system time in 40 MNIST ViT steps, against 0.06 s with fixed thresholds). Keep freed
  // memory for reuse instead; a CLI process returns it all at exit.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
  CLI::App app{"attnviz: train or load small attention models on the CPU, record every attention\n"
               "weight matrix, and draw them as heatmaps, alignment plots and image overlays."};
  app.name("attnviz");
  app.set_version_flag("--version", std::string("attnviz ") + ATTNVIZ_VERSION + " (" + attnviz::render_backend_versions() + ", Eigen " + std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." + std::to_string(EIGEN_MINOR_VERSION) + ")");
  app.require_subcommand(1);
  app.option_defaults()->always_capture_default();
  app.add_option("--data", globals().data_dir, "folder with the MNIST IDX files (default: $ATTNVIZ_DATA or data/mnist)");
  // A model copy per thread: 100000 threads once allocated 15 GB before failing. 4x the hardware
  // threads is more than any speed-up needs.
  const int max_threads = 4 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  app.add_option("--threads", globals().threads, "OpenMP threads (0 = all cores, at most " + std::to_string(max_threads) + ")")
      ->check(CLI::Validator(
          [max_threads](const std::string& v) -> std::string {
            long n = 0;
            try {
              size_t used = 0;
              n = std::stol(v, &used);
              if (used != v.size()) return "--threads needs a whole number, got '" + v + "'";
            } catch (const std::exception&) {
              return "--threads needs a whole number, got '" + v + "'";
            }
            if (n < 0 || n > max_threads)
              return "--threads " + v + " is out of range: 0 (all cores) to " + std::to_string(max_threads) +
                     " (4x the " + std::to_string(max_threads / 4) + " hardware threads)";
            return "";
          },
          "INT", "threads bound"));
  static std::uint64_t max_mib = 0;
  app.add_option("--max-mib", max_mib,
                 "largest array a file may make attnviz allocate, in MiB (0 = default: 1/8 of RAM or of ulimit -v, "
                 "now " + std::to_string(attnviz::default_max_array_bytes() >> 20) + ")")
      ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{1} << 30));
  app.add_flag("--quiet", globals().quiet, "no progress bars");
  app.footer("\nExample:\n  attnviz demo --quick --out gallery     # train small models, record, render a gallery\n"
             "  attnviz inspect samples/alignment_6x7.safetensors");
  if (const Command* c = selected_command(argc, argv)) {
    c->add(app);
  } else {
    for (const Command& c : kCommands) c.add(app);
  }
  app.parse_complete_callback([] {
    attnviz::nn::use_threads(globals().threads);
    attnviz::set_max_array_bytes(max_mib << 20);
  });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    fmt::print(stderr, "attnviz: {}\n  (run with --help for usage)\n", attnviz::printable_for_terminal(e.what()));
    return 1;
  } catch (const attnviz::UsageError& e) {
    // Messages quote file contents (tokens, keys, links): never let them reach the terminal raw.
    fmt::print(stderr, "attnviz: {}\n", attnviz::printable_for_terminal(e.what()));
    return 1;
  } catch (const attnviz::InputError& e) {
    fmt::print(stderr, "attnviz: {}\n", attnviz::printable_for_terminal(e.what()));
    return 2;
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "attnviz: out of memory (the inputs' sizes are checked against --max-mib = {} MiB; "
               "a model, --threads or --batch too large for this machine can still run out)\n",
               attnviz::max_array_bytes() >> 20);
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "attnviz: error: {}\n", attnviz::printable_for_terminal(e.what()));
    return 2;
  }
  return 0;
}
