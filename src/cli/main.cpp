// attnviz entry point: builds the CLI11 app, runs a subcommand, maps errors to exit codes
// (0 ok, 1 usage error, 2 bad input or I/O error).
#include "cli/commands.hpp"

#include <attnviz/error.hpp>
#include <attnviz/render/render_info.hpp>

#include <fmt/core.h>
#include <omp.h>
#include <Eigen/Core>

#include <cstdlib>
#include <exception>

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

void set_example(CLI::App* sub, const std::string& example) { sub->footer("\nExample:\n  " + example); }

}  // namespace attnviz::cli

int main(int argc, char** argv) {
  using namespace attnviz::cli;
  CLI::App app{"attnviz: train or load small attention models on the CPU, record every attention\n"
               "weight matrix, and draw them as heatmaps, alignment plots and image overlays."};
  app.name("attnviz");
  app.set_version_flag("--version", std::string("attnviz ") + ATTNVIZ_VERSION + " (" + attnviz::render_backend_versions() + ", Eigen " + std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." + std::to_string(EIGEN_MINOR_VERSION) + ")");
  app.require_subcommand(1);
  app.option_defaults()->always_capture_default();
  app.add_option("--data", globals().data_dir, "folder with the MNIST IDX files (default: $ATTNVIZ_DATA or data/mnist)");
  app.add_option("--threads", globals().threads, "OpenMP threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  app.add_flag("--quiet", globals().quiet, "no progress bars");
  app.footer("\nExample:\n  attnviz demo --quick --out gallery     # train small models, record, render a gallery\n"
             "  attnviz inspect samples/alignment_6x7.safetensors");
  add_demo(app);
  add_train(app);
  add_eval(app);
  add_record(app);
  add_render(app);
  add_align(app);
  add_inspect(app);
  add_bench(app);
  add_corpus(app);
  add_generate(app);
  app.parse_complete_callback([] {
    if (globals().threads > 0) omp_set_num_threads(globals().threads);
  });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    fmt::print(stderr, "attnviz: {}\n  (run with --help for usage)\n", e.what());
    return 1;
  } catch (const attnviz::UsageError& e) {
    fmt::print(stderr, "attnviz: {}\n", e.what());
    return 1;
  } catch (const attnviz::InputError& e) {
    fmt::print(stderr, "attnviz: {}\n", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "attnviz: out of memory\n");
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "attnviz: error: {}\n", e.what());
    return 2;
  }
  return 0;
}
