// Demo section "mnist": placeholder until its issue lands (renders nothing yet).
#include "cli/demo.hpp"

namespace attnviz::cli {
void demo_mnist(DemoContext& ctx) { ctx.notes.push_back("mnist: not built yet"); }
}  // namespace attnviz::cli
