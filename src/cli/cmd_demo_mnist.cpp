// Demo section "MNIST": train (or reuse) a ViT and the pooling baseline, record test digits and
// render attention overlays: one digit's heads + rollout, saliency methods side by side, their
// perturbation curves (eval saliency), a grid of digits, the misclassified digits, the pooling maps,
// and the confusion matrix.
#include "cli/demo.hpp"
#include "cli/mnist_common.hpp"

#include <attnviz/error.hpp>
#include <attnviz/data/idx.hpp>
#include <attnviz/models/faithfulness.hpp>
#include <attnviz/models/mnist.hpp>
#include <attnviz/render/render.hpp>
#include <attnviz/analysis/saliency.hpp>

#include <fmt/core.h>

#include <chrono>

namespace attnviz::cli {

namespace {

namespace fs = std::filesystem;

struct Trained {
  std::unique_ptr<models::MnistModel> model;
  std::string note;
};

// Loads ctx.models/<name>.safetensors, or trains it and saves it there.
Trained train_or_load(DemoContext& ctx, const std::string& name, const models::MnistConfig& cfg,
                      const train::MnistTrainOptions& opt, const ImageSet& train, const ImageSet& test) {
  fs::path path = ctx.models / (name + ".safetensors");
  Trained t;
  if (fs::exists(path)) {
    t.model = models::load_mnist_model(path);
    if (t.model->config().to_json() == cfg.to_json()) {
      t.note = fmt::format("mnist: reused {} (trained earlier)", path.string());
      return t;
    }
  }
  fmt::print(stderr, "mnist: training {} ({})\n", name, cfg.to_json());
  t.model = models::make_mnist_model(cfg, opt.seed);
  auto start = std::chrono::steady_clock::now();
  auto res = train_with_progress(*t.model, train, test, opt, globals().quiet);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fs::create_directories(ctx.models);
  save_mnist_model(path, *t.model, {{"test_accuracy", fmt::format("{:.4f}", res.epochs.back().eval.get("accuracy"))}});
  t.note = fmt::format("mnist: trained {} in {:.0f} s ({} epochs, {:.0f} samples/s): test accuracy {:.2f}%", name,
                       secs, res.epochs.size(), res.samples_per_second, 100 * res.epochs.back().eval.get("accuracy"));
  return t;
}

Mat saliency_map(const AttentionRecord& r, SaliencyMethod m) {
  SaliencyOptions so;
  so.method = m;
  return patch_saliency(r, so);
}

// Each record's digit under its `m` map, captioned with the true and predicted class.
std::vector<render::OverlayPanel> digit_panels(const std::vector<AttentionRecord>& recs, SaliencyMethod m) {
  return render::overlay_panels(recs, {}, [m](const AttentionRecord& r) { return saliency_map(r, m); });
}

// The layout of the digit grids: 8 panels of 84 pt to a row.
render::OverlayOptions digit_grid(const std::string& title) {
  render::OverlayOptions oo;
  oo.columns = 8;
  oo.panel = 84;
  oo.title = title;
  return oo;
}

void add_item(DemoContext& ctx, const std::string& stem, const std::string& title, const std::string& caption,
              const std::vector<render::OverlayPanel>& panels, const render::OverlayOptions& opt) {
  fs::path dir = ctx.out / "mnist";
  fs::create_directories(dir);
  render::render_overlay(panels, opt, dir / (stem + ".png"));
  render::render_overlay(panels, opt, dir / (stem + ".svg"));
  ctx.items.push_back({"MNIST", title, caption, "mnist/" + stem + ".png", {"mnist/" + stem + ".svg"}});
}

}  // namespace

void demo_mnist(DemoContext& ctx) {
  fs::path dir = mnist_dir();
  ImageSet train, test;
  try {
    train = load_mnist(dir, "train");
    test = load_mnist(dir, "test");
  } catch (const InputError& e) {
    ctx.notes.push_back(std::string("mnist: skipped (") + e.what() + ")");
    return;
  }
  // The quick recipe: 2 blocks, 3 epochs without augmentation (the 2-block model trains at about
  // twice the speed of the default); the full one is the default `attnviz train mnist` recipe.
  models::MnistConfig vit_cfg;
  train::MnistTrainOptions vit_opt;
  if (ctx.quick) {
    vit_cfg.depth = 2;
    vit_opt.epochs = 3;
    vit_opt.shift = 0;
    vit_opt.warmup_epochs = 0.2f;
  }
  auto vit = train_or_load(ctx, ctx.quick ? "mnist-vit-quick" : "mnist-vit", vit_cfg, vit_opt, train, test);
  ctx.notes.push_back(vit.note);

  models::MnistConfig pool_cfg;
  pool_cfg.arch = "pool";
  train::MnistTrainOptions pool_opt;
  pool_opt.epochs = ctx.quick ? 2 : 10;
  pool_opt.lr = 3e-3f;
  pool_opt.shift = 0;
  auto pool = train_or_load(ctx, ctx.quick ? "mnist-pool-quick" : "mnist-pool", pool_cfg, pool_opt, train, test);
  ctx.notes.push_back(pool.note);

  auto ev = models::evaluate_mnist(*vit.model, test);
  ctx.notes.push_back(fmt::format("mnist: ViT test accuracy {:.2f}% ({} of {} wrong)", 100 * ev.accuracy(),
                                  ev.count - ev.correct, ev.count));

  const std::vector<int> first = models::select_examples(test, {.first = 24});
  std::vector<int> wrong;
  if (ev.correct < ev.count) wrong = models::select_examples(test, {.misclassified = 24}, ev.predictions);
  auto recs = models::record_mnist(*vit.model, test, first, "mnist-vit");
  fs::create_directories(ctx.out / "mnist");
  save_records(ctx.out / "mnist" / "digits.safetensors", recs);

  // 1. One digit: the image, each head's CLS attention in the last layer, their mean, the rollout.
  {
    const AttentionRecord& r = recs[0];
    render::OverlaySelection sel;
    auto panels = render::overlay_head_strip(r, sel);
    render::OverlayPanel roll;
    roll.image = *r.image;
    roll.map = saliency_map(r, SaliencyMethod::Rollout);
    roll.caption = "rollout";
    panels.push_back(roll);
    render::OverlayOptions oo;
    oo.title = fmt::format("test digit 0 (true {}, predicted {}): last layer CLS attention per head, and rollout",
                           r.metadata.at("label"), r.metadata.at("prediction"));
    add_item(ctx, "strip", "One digit, every head",
             "The digit, the CLS token's attention to each patch in the last layer for each head (and their mean), "
             "then the rollout through all layers. Bright = more attention; each panel is scaled to its own range.",
             panels, oo);
  }
  // 2. Saliency methods side by side on a few digits.
  {
    std::vector<render::OverlayPanel> panels;
    for (int k : {0, 1, 2, 3}) {
      const AttentionRecord& r = recs[k];
      render::OverlayPanel img;
      img.image = *r.image;
      img.caption = "digit " + r.metadata.at("label");
      panels.push_back(img);
      for (auto m : {SaliencyMethod::Cls, SaliencyMethod::Rollout, SaliencyMethod::Flow, SaliencyMethod::GradRollout,
                     SaliencyMethod::Chefer}) {
        render::OverlayPanel p;
        p.image = *r.image;
        p.map = saliency_map(r, m);
        p.caption = to_string(m);
        panels.push_back(p);
      }
    }
    render::OverlayOptions oo;
    oo.columns = 6;
    oo.title = "five saliency methods on the same digits";
    add_item(ctx, "methods", "Five saliency methods",
             "Rows are test digits. cls: the last layer's CLS attention (mean of heads); rollout and flow "
             "(Abnar & Zuidema 2020) follow attention through all layers with the residual added; grad-rollout "
             "keeps only attention whose gradient raises the predicted logit; chefer (Chefer et al. 2021) weights "
             "the LRP relevance of each attention map by its gradient and rolls that out.",
             panels, oo);
  }
  // 2b. How faithful each map is: the positive-perturbation curves of `eval saliency`.
  {
    models::PerturbationOptions po;
    po.images = ctx.quick ? 100 : 500;
    const models::FaithfulnessResult fr = models::perturbation_test(*vit.model, test, po);
    std::vector<render::LineSeries> series;
    for (const auto& c : fr.methods)
      series.push_back({fmt::format("{} (AUC {:.1f})", c.method, c.auc_positive), fr.fractions, c.positive});
    render::LineChartOptions lo;
    lo.title = fmt::format("positive perturbation, first {} test digits (random seed {})", fr.images, po.seed);
    lo.x_label = "fraction of patches masked, most relevant first";
    lo.y_label = "share still predicted as before";
    lo.ymin = 0, lo.ymax = 1;
    for (const char* ext : {"png", "svg"})
      render::render_line_chart(series, lo, ctx.out / "mnist" / (std::string("perturbation.") + ext));
    ctx.items.push_back({"MNIST", "Which map to trust",
                         "The perturbation test of Chefer et al. (2021), as `attnviz eval saliency` runs it: patches "
                         "are masked in the order each method ranks them, most relevant first; the faster the share "
                         "of unchanged predictions falls, the better the map (lower AUC, x100). random masks in a "
                         "seeded random order.",
                         "mnist/perturbation.png", {"mnist/perturbation.svg"}});
  }
  // 3. A grid of digits with the rollout, labelled true / predicted.
  add_item(ctx, "grid", "Rollout on 24 test digits",
           "The first 24 test digits with the ViT's attention rollout; the caption gives the true and the "
           "predicted class (red when wrong).",
           digit_panels(recs, SaliencyMethod::Rollout), digit_grid("attention rollout on the first 24 test digits"));
  // 4. Misclassified digits.
  if (!wrong.empty()) {
    auto wrecs = models::record_mnist(*vit.model, test, wrong, "mnist-vit");
    save_records(ctx.out / "mnist" / "misclassified.safetensors", wrecs);
    auto oo = digit_grid(fmt::format("misclassified test digits ({} of {} wrong; first {} shown), attention rollout",
                                     ev.count - ev.correct, ev.count, wrong.size()));
    add_item(ctx, "misclassified", "Misclassified digits",
             "Test digits the ViT gets wrong, with its rollout: where it looked when it made the mistake.",
             digit_panels(wrecs, SaliencyMethod::Rollout), oo);
  }
  // 5. The pooling baseline's single attention map.
  {
    auto precs = models::record_mnist(*pool.model, test, first, "mnist-pool");
    save_records(ctx.out / "mnist" / "pool.safetensors", precs);
    auto pe = models::evaluate_mnist(*pool.model, test);
    auto oo = digit_grid(fmt::format("attention-pooling baseline ({:.2f}% test accuracy): its one learned query's weights",
                                     100 * pe.accuracy()));
    add_item(ctx, "pool", "Attention pooling baseline",
             "The classic single-query attention classifier (softmax over the 49 patches): its one attention map "
             "is directly the model's weighting of image regions.",
             digit_panels(precs, SaliencyMethod::Cls), oo);
  }
  // 6. Confusion matrix.
  const render::ConfusionOptions co{.title = fmt::format("ViT confusion matrix · {:.2f}% test accuracy", 100 * ev.accuracy())};
  for (const char* ext : {"png", "svg"})
    render::render_confusion(ev.confusion_rows(), co, ctx.out / "mnist" / (std::string("confusion.") + ext));
  ctx.items.push_back({"MNIST", "Confusion matrix",
                       "Rows: true class, columns: predicted class, cells: counts over the 10,000 test digits. The "
                       "colour scale ends at the largest off-diagonal count so the errors stand out.",
                       "mnist/confusion.png", {"mnist/confusion.svg"}});
}

}  // namespace attnviz::cli
