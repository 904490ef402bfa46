// Demo section "textcls": placeholder until its issue lands (renders nothing yet).
#include "cli/demo.hpp"

namespace attnviz::cli {
void demo_textcls(DemoContext& ctx) { ctx.notes.push_back("textcls: not built yet"); }
}  // namespace attnviz::cli
