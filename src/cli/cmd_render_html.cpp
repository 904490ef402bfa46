// `attnviz render html INPUT -o OUT.html`: one self-contained interactive page (head, model, matrix,
// text and image views); parses options, computes the image overlays the renderer cannot (rollout,
// flow: analysis layer), and reports the page size and anything left out.
#include "cli/commands.hpp"
#include "cli/html_views.hpp"
#include "cli/input_options.hpp"

#include <attnviz/analysis/saliency.hpp>
#include <attnviz/error.hpp>
#include <attnviz/record/import.hpp>
#include <attnviz/render/colormap.hpp>
#include <attnviz/render/html.hpp>

#include <fmt/core.h>

#include <filesystem>
#include <memory>

namespace attnviz::cli {

std::vector<render::HtmlImageMap> html_image_maps(const AttentionRecord& rec, const std::vector<std::string>& methods,
                                                  const std::string& path) {
  std::vector<render::HtmlImageMap> out;
  if (!rec.image || rec.image->patch_rows <= 0) return out;
  for (const auto& m : methods) {
    if (m == "none") continue;
    SaliencyOptions so;
    so.method = parse_saliency_method(m);
    if (so.method == SaliencyMethod::GradRollout && rec.gradients.empty()) continue;
    if (so.method == SaliencyMethod::Chefer && (rec.gradients.empty() || rec.relevance.empty())) continue;
    Mat map = patch_saliency(rec, so, path);  // [patch_rows, patch_cols]
    render::HtmlImageMap hm{m, static_cast<int>(map.rows()), static_cast<int>(map.cols()), {}};
    for (int r = 0; r < map.rows(); ++r)
      for (int c = 0; c < map.cols(); ++c) hm.values.push_back(map(r, c));
    out.push_back(std::move(hm));
  }
  return out;
}

void add_render_html(CLI::App& parent) {
  struct Opts {
    std::string input, out;
    ImportOptions import;
    render::HtmlOptions html;
    std::vector<std::string> maps{"rollout", "flow"};
    CLI::Option* maps_opt = nullptr;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = parent.add_subcommand("html", "one offline, self-contained HTML page: head, model, matrix, text and image views");
  sub->add_option("input", o->input, "record or importable file (.safetensors, .npy, .npz, .json, .csv/.tsv)")->required();
  sub->add_option("-o,--out", o->out, "output page (.html)")->required();
  add_import_options(sub, o->import);
  sub->add_option("--bits", o->html.bits, "bits per stored weight, 8 or 16 (per-head linear quantization)")
      ->check(CLI::IsMember({8, 16}));
  sub->add_option("--max-mib", o->html.max_mib, "largest page size in MiB; full matrices past it are left out "
                                                "(named on the page and here)")->check(CLI::Range(0.01, 4096.0));
  std::string names;
  for (const auto& n : render::Colormap::names()) names += (names.empty() ? "" : ", ") + n;
  sub->add_option("--cmap", o->html.cmap, "colormap: " + names);
  sub->add_option("--title", o->html.title, "page title (default: the input's file name)");
  o->maps_opt = sub->add_option("--maps", o->maps, "image records: extra overlays to compute (" +
                                     saliency_method_list() + "; 'none' for none)")->delimiter(',');
  set_example(sub, "attnviz render html samples/alignment_6x7.safetensors -o view.html   # open it in a browser");
  sub->callback([o] {
    std::string ext = std::filesystem::path(o->out).extension().string();
    for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (ext != ".html" && ext != ".htm") throw UsageError("render html: output must end in .html, not '" + o->out + "'");
    render::Colormap::get(o->html.cmap);
    AttentionRecord rec = import_record(o->input, o->import);
    o->html.source = std::filesystem::path(o->input).filename().string();
    try {
      o->html.image_maps = html_image_maps(rec, o->maps, o->input);
    } catch (const InputError&) {
      if (o->maps_opt->count()) throw;  // asked for: say why not; the default maps are a bonus
    }
    render::HtmlReport rep = render::render_html(rec, o->html, o->out);
    fmt::print("wrote {} ({:.2f} MiB; {} weights at {} bits, {:.2f} MiB packed)\n", o->out, rep.bytes / 1048576.0,
               rep.values, o->html.bits, rep.data_bytes / 1048576.0);
    for (const auto& l : rep.left_out) fmt::print("left out (over --max-mib {}): {}\n", o->html.max_mib, l);
  });
}

}  // namespace attnviz::cli
