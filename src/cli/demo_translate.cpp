// Demo section "translate": placeholder until its issue lands (renders nothing yet).
#include "cli/demo.hpp"

namespace attnviz::cli {
void demo_translate(DemoContext& ctx) { ctx.notes.push_back("translate: not built yet"); }
}  // namespace attnviz::cli
