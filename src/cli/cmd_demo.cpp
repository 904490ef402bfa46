// `attnviz demo`: train or reuse the sample models, record, render a gallery with an index.html.
#include "cli/commands.hpp"
#include "cli/demo.hpp"
#include "cli/html_views.hpp"

#include <attnviz/error.hpp>
#include <attnviz/io/atomic_file.hpp>
#include <attnviz/render/gallery.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <memory>

namespace attnviz::cli {

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
    write_file_atomically(ctx.out / "index.html", render::gallery_html({.items = ctx.items, .notes = ctx.notes}));
    double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (const auto& n : ctx.notes) fmt::print("  {}\n", n);
    fmt::print("gallery: {} ({} figures, {:.1f} s)\n", (ctx.out / "index.html").string(), ctx.items.size(), total);
  });
}

}  // namespace attnviz::cli
