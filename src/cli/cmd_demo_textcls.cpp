// Demo section "Text classification": the BiGRU + attention-pooling classifier (and, without
// --quick, the transformer) on the fortunes task, trained or reused from the models folder; test
// sentences of every class drawn with each word shaded by its attention weight (PNG/SVG/PDF/HTML).
#include "cli/commands.hpp"
#include "cli/demo.hpp"
#include "cli/progress.hpp"

#include <attnviz/analysis/bow_baseline.hpp>
#include <attnviz/error.hpp>
#include <attnviz/models/textcls.hpp>
#include <attnviz/train/tasks.hpp>
#include <attnviz/render/text_view.hpp>

#include <fmt/core.h>

#include <filesystem>
#include <memory>

namespace attnviz::cli {

namespace {
namespace fs = std::filesystem;
using namespace attnviz::models;

// Loads models/textcls-<arch>[-quick].safetensors or trains it on the default fortunes split.
std::unique_ptr<TextClassifier> get_model(DemoContext& ctx, const std::string& arch, const TextSplit& sp) {
  const fs::path path = ctx.models / ("textcls-" + arch + (ctx.quick ? "-quick" : "") + ".safetensors");
  if (fs::exists(path)) return std::move(load_textcls_model(path).model);
  TextClsConfig cfg;
  cfg.arch = arch;
  train::TextTrainOptions o;
  // quick: 8 epochs already put the BiGRU's attention on topical words (accuracy a few points
  // below the full 15-epoch recipe).
  o.epochs = ctx.quick ? 8 : 15;
  auto model = make_textcls_model(cfg, build_text_vocab(sp.train.texts, 2), sp.train.labels, o.seed);
  std::unique_ptr<ProgressBar> bar;
  train::Callbacks cb;
  cb.on_step = [&](const train::StepInfo& s) {
    if (!bar)
      bar = std::make_unique<ProgressBar>(fmt::format("textcls {} epoch {}/{}", arch, s.epoch + 1, o.epochs), s.steps,
                                          !globals().quiet);
    bar->update(s.step, fmt::format("loss {:.3f}", s.loss));
  };
  cb.on_epoch = [&](const train::EpochInfo&) {
    if (bar) bar->finish();
    bar.reset();
  };
  train::train_textcls(*model, sp.train, {}, o, cb);
  save_textcls_model(path, *model, TextDataSource{}.to_metadata());   // only a finished model is reused
  return model;
}

// Two short test texts of every class, taken at evenly spaced places in that class's part of the
// test split (not chosen by whether the model gets them right), in class order.
std::vector<TextToRecord> pick_texts(const TextSplit& sp, int per_class, int max_words) {
  std::vector<TextToRecord> out;
  for (int c = 0; c < static_cast<int>(sp.test.labels.size()); ++c) {
    std::vector<int> idx;
    for (size_t i = 0; i < sp.test.size(); ++i)
      if (sp.test.y[i] == c && static_cast<int>(word_tokens(sp.test.texts[i]).size()) <= max_words)
        idx.push_back(static_cast<int>(i));
    for (int k = 0; k < per_class && k < static_cast<int>(idx.size()); ++k) {
      int i = idx[(k + 1) * idx.size() / (per_class + 1)];
      out.push_back({sp.test.texts[i], c, fmt::format("test #{}", i)});
    }
  }
  return out;
}

void figure(DemoContext& ctx, TextClassifier& model, const TextSplit& sp, const std::string& stem,
            const std::string& title, const std::string& caption) {
  auto records = record_textcls(model, pick_texts(sp, 2, 28));
  std::vector<render::TextViewItem> items;
  for (const auto& r : records) items.push_back(render::text_item(r, {}));
  render::TextViewOptions opt;
  opt.title = title;
  for (const char* ext : {".png", ".svg", ".pdf", ".html"}) render::render_text(items, opt, ctx.out / (stem + ext));
  save_records(ctx.models / (stem + ".safetensors"), records);
  ctx.items.push_back({"Text classification", title, caption, stem + ".png",
                       {stem + ".svg", stem + ".pdf", stem + ".html"}});
}

}  // namespace

void demo_textcls(DemoContext& ctx) {
  TextDataSource src;
  TextSplit sp;
  try {
    sp = src.load();
  } catch (const InputError& e) {
    // The fortunes package is missing: say so and let the other sections run.
    ctx.notes.push_back(std::string("textcls: skipped (") + e.what() + ")");
    return;
  }
  BowModel bow = train_bow(sp.train);
  auto bm = classification_metrics(sp.test.y, bow.predict(sp.test.texts), static_cast<int>(sp.test.labels.size()));
  std::vector<std::string> archs = {"bigru"};
  if (!ctx.quick) archs.push_back("transformer");
  for (const auto& arch : archs) {
    auto model = get_model(ctx, arch, sp);
    auto r = evaluate_textcls(*model, sp.test);
    ctx.notes.push_back(fmt::format("textcls {}: test accuracy {:.3f}, macro-F1 {:.3f} (bag-of-words baseline {:.3f} / "
                                    "{:.3f}; fortunes, {} test texts, split seed {})",
                                    arch, r.classes.accuracy, r.classes.macro_f1, bm.accuracy, bm.macro_f1,
                                    sp.test.size(), src.split_seed));
    if (arch == "bigru")
      figure(ctx, *model, sp, "textcls_bigru", "Which words decided the topic? (BiGRU + additive attention pooling)",
             fmt::format("Fortune-file quotations from the test split, two per category (evenly spaced, not picked by outcome); each word is shaded by the "
                         "attention-pooling weight the classifier gave it (darkest = the sentence's largest weight). "
                         "The header is green when the prediction is right, red when wrong. Test accuracy {:.1f}% "
                         "(bag-of-words logistic regression: {:.1f}%). The .html version shows each weight on hover.",
                         100 * r.classes.accuracy, 100 * bm.accuracy));
    else
      figure(ctx, *model, sp, "textcls_transformer", "The same texts through the transformer's [CLS] attention",
             fmt::format("Shade = the last layer's attention from [CLS] to each word, averaged over heads. "
                         "Test accuracy {:.1f}%.", 100 * r.classes.accuracy));
  }
}

}  // namespace attnviz::cli
