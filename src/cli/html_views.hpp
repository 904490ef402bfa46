// The interactive HTML pages from the CLI side: image overlays the renderer cannot compute (rollout,
// flow: analysis layer), and the demo gallery's one page per record (cmd_render_html.cpp,
// cmd_demo_html.cpp).
#pragma once
#include "cli/demo.hpp"

#include <attnviz/record/record.hpp>
#include <attnviz/render/html.hpp>

#include <string>
#include <vector>

namespace attnviz::cli {

// Patch-grid maps by saliency method ("rollout", "flow", "grad-rollout", "chefer"; "none" is skipped,
// and grad-rollout / chefer when the record has no gradients / relevance) for a record with an image and a patch grid;
// empty for other records. Throws UsageError for an unknown method, InputError(path) for a record
// without stacked self-attention.
std::vector<render::HtmlImageMap> html_image_maps(const AttentionRecord& rec, const std::vector<std::string>& methods,
                                                  const std::string& path);

// Writes <stem>.html beside every record file the demo left in ctx.out (outside ctx.models; the first
// sample of a multi-sample file), each with a thumbnail-grid preview, as gallery items of a section
// "Interactive views".
void demo_html_views(DemoContext& ctx);

}  // namespace attnviz::cli
