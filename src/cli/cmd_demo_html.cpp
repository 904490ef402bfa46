// Demo section "Interactive views": one offline HTML page (render html) per record file the other
// sections left in the gallery, each shown by its static thumbnail grid and linked as [html].
#include "cli/demo.hpp"
#include "cli/html_views.hpp"

#include <attnviz/error.hpp>
#include <attnviz/record/record.hpp>
#include <attnviz/render/html.hpp>
#include <attnviz/render/plots.hpp>

#include <fmt/core.h>

#include <algorithm>

namespace attnviz::cli {

namespace fs = std::filesystem;

void demo_html_views(DemoContext& ctx) {
  std::vector<fs::path> files;
  if (!fs::exists(ctx.out)) return;
  const fs::path models = fs::weakly_canonical(ctx.models);
  for (auto it = fs::recursive_directory_iterator(ctx.out); it != fs::recursive_directory_iterator(); ++it) {
    if (it->is_directory() && fs::weakly_canonical(it->path()) == models) {
      it.disable_recursion_pending();  // trained models, not records
      continue;
    }
    if (it->is_regular_file() && it->path().extension() == ".safetensors") files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::vector<AttentionRecord> recs;
    try {
      recs = load_records(f);
    } catch (const InputError&) {
      continue;  // not a record file
    }
    if (recs.empty() || recs.front().tensors.empty()) continue;
    const AttentionRecord& rec = recs.front();
    fs::path page = f, preview = f;
    page.replace_extension(".html");
    preview.replace_extension(".grid.png");
    render::HtmlOptions opt;
    opt.source = f.filename().string();
    try {
      opt.image_maps = html_image_maps(rec, {"rollout"}, f.string());
    } catch (const InputError&) {
      // no stacked self-attention: the page shows the CLS rows only
    }
    render::HtmlReport rep = render::render_html(rec, opt, page);
    render::PaintOptions paint;
    paint.small_png = true;
    paint.scale = 1;
    render::GridOptions grid;
    grid.title = "-";
    render::render_grid(rec, grid, preview, paint);
    std::string rel_page = fs::relative(page, ctx.out).generic_string();
    std::string rel_preview = fs::relative(preview, ctx.out).generic_string();
    int heads = 0;
    for (const auto& t : rec.tensors) heads += t.heads;
    std::string caption = fmt::format(
        "{} tensors, {} heads; the interactive page ({:.2f} MiB, offline, one file) has head, model and matrix "
        "views{}{}: hover a token or a cell, click a thumbnail, zoom with the wheel.",
        rec.tensors.size(), heads, rep.bytes / 1048576.0, rec.image ? " and the image overlay" : "",
        recs.size() > 1 ? fmt::format(" (sample 0 of {}; `attnviz render html {} --sample N` for others)", recs.size(),
                                      opt.source)
                        : "");
    ctx.items.push_back({"Interactive views", f.filename().string(), caption, rel_preview, {rel_page}});
  }
}

}  // namespace attnviz::cli
