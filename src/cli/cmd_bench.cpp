// `attnviz bench kernels|train|render`: the parent command; each area adds its benchmark.
#include "cli/commands.hpp"

namespace attnviz::cli {

void add_bench(CLI::App& app) {
  auto* sub = app.add_subcommand("bench", "measure throughput: attention kernels, training, rendering");
  sub->require_subcommand(1);
  set_example(sub, "attnviz bench kernels --json");
  add_bench_kernels(*sub);
  add_bench_train(*sub);
  add_bench_render(*sub);
  add_bench_lm(*sub);
  add_bench_encoder(*sub);
}

}  // namespace attnviz::cli
