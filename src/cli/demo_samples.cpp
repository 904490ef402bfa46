// Demo section "samples": placeholder until its issue lands (renders nothing yet).
#include "cli/demo.hpp"

namespace attnviz::cli {
void demo_samples(DemoContext& ctx) { ctx.notes.push_back("samples: not built yet"); }
}  // namespace attnviz::cli
