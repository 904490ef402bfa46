// `attnviz demo`: train or reuse the sample models, record, render a gallery with an index.html.
#include "cli/commands.hpp"
#include "cli/demo.hpp"
#include "cli/html_views.hpp"

#include <attnviz/error.hpp>
#include <attnviz/io/atomic_file.hpp>
#include <attnviz/render/escape.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <memory>

namespace attnviz::cli {

namespace {

using render::html_escape;

// One self-contained page: sections in the order they were added, a figure per item with its
// caption and links to the vector versions. Opens from disk in any browser (no server, no scripts).
std::string gallery_html(const DemoContext& ctx) {
  std::string h =
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>attnviz gallery</title>\n"
      "<style>body{font-family:sans-serif;margin:2em;max-width:1400px;color:#222}"
      "figure{display:inline-block;vertical-align:top;margin:0 1.5em 2em 0;max-width:640px}"
      "figure img{max-width:640px;border:1px solid #ddd}figcaption{font-size:0.9em;line-height:1.35}"
      "h2{border-bottom:1px solid #ccc;padding-bottom:0.2em}.notes{font-family:monospace;white-space:pre}"
      "</style></head><body>\n<h1>attnviz gallery</h1>\n";
  std::string section;
  for (const auto& it : ctx.items) {
    if (it.section != section) {
      section = it.section;
      h += "<h2>" + html_escape(section) + "</h2>\n";
    }
    h += "<figure><a href=\"" + html_escape(it.image) + "\"><img src=\"" + html_escape(it.image) + "\" alt=\"" +
         html_escape(it.title) + "\"></a><figcaption><b>" + html_escape(it.title) + "</b> " + html_escape(it.caption);
    for (const auto& l : it.links) {
      auto dot = l.rfind('.');
      std::string kind = dot == std::string::npos ? "file" : l.substr(dot + 1);
      h += " <a href=\"" + html_escape(l) + "\">[" + html_escape(kind) + "]</a>";
    }
    h += "</figcaption></figure>\n";
  }
  if (!ctx.notes.empty()) {
    h += "<h2>Run summary</h2>\n<div class=\"notes\">";
    for (const auto& n : ctx.notes) h += html_escape(n) + "\n";
    h += "</div>\n";
  }
  h += "</body></html>\n";
  return h;
}

}  // namespace

void add_demo(CLI::App& app) {
  struct Opts {
    std::string out = "gallery";
    bool quick = false;
    std::string model;
    std::vector<std::string> only;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("demo", "train or reuse the sample models, record, render a gallery");
  sub->add_option("--out", o->out, "output folder (models are kept in OUT/models and reused)");
  sub->add_flag("--quick", o->quick, "small, fast settings (minutes instead of the full recipes)");
  sub->add_option("--model", o->model,
                  "a pretrained LM (GGUF llama/gpt2 or minGPT JSON) for the LLM section (default: stories260K from "
                  "$ATTNVIZ_MODELS or ../shared/models)");
  sub->add_option("--only", o->only, "run only these sections (samples, mnist, translate, textcls, llm, html)")
      ->delimiter(',')
      ->check(CLI::IsMember({"samples", "mnist", "translate", "textcls", "llm", "html"}));
  set_example(sub, "attnviz demo --quick --out gallery && xdg-open gallery/index.html");
  sub->callback([o] {
    namespace fs = std::filesystem;
    DemoContext ctx;
    ctx.out = o->out;
    ctx.models = ctx.out / "models";
    ctx.quick = o->quick;
    ctx.lm_model = o->model;
    // Checked first: a wrong --model should not surface after minutes of training.
    if (!o->model.empty() && !fs::is_regular_file(o->model)) throw InputError(o->model, "--model: no such file");
    fs::create_directories(ctx.models);
    auto t0 = std::chrono::steady_clock::now();
    using Section = void (*)(DemoContext&);
    const std::pair<const char*, Section> sections[] = {
        {"samples", demo_samples}, {"mnist", demo_mnist}, {"translate", demo_translate}, {"textcls", demo_textcls}, {"llm", demo_lm},
        {"html", demo_html_views}};  // last: one interactive page per record the others wrote
    for (const auto& [name, fn] : sections) {
      if (!o->only.empty() && std::find(o->only.begin(), o->only.end(), name) == o->only.end()) continue;
      auto s0 = std::chrono::steady_clock::now();
      fmt::print("== demo: {}\n", name);
      fn(ctx);
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - s0).count();
      fmt::print("   {} done in {:.1f} s\n", name, s);
    }
    write_file_atomically(ctx.out / "index.html", gallery_html(ctx));
    double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (const auto& n : ctx.notes) fmt::print("  {}\n", n);
    fmt::print("gallery: {} ({} figures, {:.1f} s)\n", (ctx.out / "index.html").string(), ctx.items.size(), total);
  });
}

}  // namespace attnviz::cli
