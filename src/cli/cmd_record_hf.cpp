// `attnviz record encoder|vit --model DIR`: pretrained Hugging Face encoders (BERT, RoBERTa,
// DistilBERT; ViT image classifiers) run on a sentence (pair) or an image, every layer x head recorded.
#include "cli/commands.hpp"
#include "cli/record_options.hpp"

#include <attnviz/data/image.hpp>
#include <attnviz/error.hpp>
#include <attnviz/models/encoder.hpp>
#include <attnviz/models/hf.hpp>
#include <attnviz/record/record.hpp>

#include <fmt/core.h>

#include <memory>

namespace attnviz::cli {

namespace {

models::LoadedEncoder load_dir(const std::string& dir, bool want_vit) {
  if (!models::is_hf_dir(dir)) throw InputError(dir, "not a Hugging Face model directory (no config.json)");
  const std::string type = models::hf_model_type(dir);
  if (!models::hf_is_encoder(type) || want_vit != (type == "vit"))
    throw UsageError(fmt::format("{}: model_type '{}' — use `attnviz record {}`", dir, type,
                                 type == "vit" ? "vit" : models::hf_is_encoder(type) ? "encoder" : "... (or generate for decoders)"));
  return models::load_encoder_hf(dir);
}

}  // namespace

void add_record_hf(CLI::App& record) {
  struct TextOpts {
    std::string model, text, pair, out;
    bool has_pair = false;
    double max_record_mib = 2048;
    std::vector<std::string> what;   // --record
    int klass = -1;                  // --class: the label --record relevance explains
  };
  auto t = std::make_shared<TextOpts>();
  auto* enc = record.add_subcommand("encoder", "record every layer x head of a BERT / RoBERTa / DistilBERT directory on a sentence (pair)");
  enc->add_option("--model", t->model, "Hugging Face directory (config.json, model.safetensors, vocab.txt / tokenizer.json)")->required();
  enc->add_option("--text", t->text, "the sentence")->required();
  auto* p = enc->add_option("--text-pair", t->pair, "a second sentence ([SEP]-separated, token type 1)");
  enc->add_option("-o,--out", t->out, "output record (.safetensors)")->required();
  enc->add_option("--max-record-mib", t->max_record_mib, "refuse a record larger than this (MiB), before computing");
  add_record_what(enc, t->what, true, true,   // mixing: T^2 rows through each layer's second half
                  "the gradient and the LRP relevance of every attention map for the predicted label of a "
                  "checkpoint with a sequence-classification head, for saliency method chefer, Chefer et al. 2021");
  auto* eklass = enc->add_option("--class", t->klass,
                                 "with --record relevance: the label id whose logit is explained; default the prediction");
  set_example(enc, "attnviz record encoder --model bert-base-uncased --text \"the cat sat on the mat\" --text-pair \"the dog slept\" -o bert.safetensors");
  enc->callback([t, p, eklass] {
    const models::RecordOptions what = record_what(t->what);
    if (eklass->count() && !what.relevance) throw UsageError("--class needs --record relevance");
    const models::LoadedEncoder e = load_dir(t->model, false);
    const auto& cfg = e.model->config();
    if (what.relevance && cfg.labels <= 0)   // the model directory cannot give it: exit 2
      throw InputError(t->model, "--record relevance explains a label, and this checkpoint has no sequence-classification "
                                 "head (pooler / pre_classifier + classifier weights)");
    if (what.relevance && cfg.act == models::EncoderAct::GeluTanh)
      throw InputError((std::filesystem::path(t->model) / "config.json").string(),
                       "--record relevance runs the engine's blocks (GELU erf or ReLU); this model's hidden_act is a tanh GELU");
    if (eklass->count() && (t->klass < 0 || t->klass >= cfg.labels))
      throw UsageError(fmt::format("{}: --class {} outside the model's {} labels (0..{})", t->model, t->klass, cfg.labels,
                                   cfg.labels - 1));
    const std::string* pair = p->count() ? &t->pair : nullptr;
    AttentionRecord r = models::record_encoder_text(e, t->text, pair, globals().threads, t->max_record_mib, what, t->klass);
    r.metadata["source"] = std::filesystem::path(t->model).filename().string();
    save_record(t->out, r);
    const auto& c = e.model->config();
    fmt::print(stderr, "wrote {} ({} layers x {} heads x {}x{} tokens{})\n", t->out, c.layers, c.heads, r.tokens["tokens"].size(),
               r.tokens["tokens"].size(),
               what.relevance ? fmt::format("; prediction {}, p = {}, explained class {}", r.metadata["prediction"],
                                            r.metadata["score"], r.metadata["explained"])
                              : "");
  });

  struct VitOpts {
    std::string model, image, out;
    std::vector<std::string> what;   // --record
    int klass = -1;                  // --class: the logit --record relevance explains
  };
  auto v = std::make_shared<VitOpts>();
  auto* vit = record.add_subcommand("vit", "record every layer x head of a Hugging Face ViT image classifier on an image");
  vit->add_option("--model", v->model, "Hugging Face directory (config.json, model.safetensors, preprocessor_config.json)")->required();
  vit->add_option("--image", v->image, "image file (PNG, JPEG, PGM/PPM, BMP)")->required();
  vit->add_option("-o,--out", v->out, "output record (.safetensors)")->required();
  add_record_what(vit, v->what, true, true);
  auto* klass = vit->add_option("--class", v->klass,
                                "with --record relevance: the class (label id) whose logit is explained; default the prediction");
  set_example(vit, "attnviz record vit --model vit-base-patch16-224 --image cat.jpg --record relevance -o vit.safetensors && attnviz render overlay vit.safetensors --method chefer -o chefer.png");
  vit->callback([v, klass] {
    const models::RecordOptions what = record_what(v->what);
    if (klass->count() && !what.relevance) throw UsageError("--class needs --record relevance");
    const models::LoadedEncoder e = load_dir(v->model, true);
    const int labels = e.model->config().labels;
    if (what.relevance && e.model->config().act == models::EncoderAct::GeluTanh)   // the model file cannot give it: exit 2
      throw InputError((std::filesystem::path(v->model) / "config.json").string(),
                       "--record relevance runs the engine's blocks (GELU erf or ReLU); this ViT's hidden_act is a tanh GELU");
    if (klass->count() && (v->klass < 0 || v->klass >= labels))
      throw UsageError(fmt::format("{}: --class {} outside the model's {} labels (0..{})", v->model, v->klass, labels, labels - 1));
    const DecodedImage img = read_image(v->image);
    AttentionRecord r = models::record_vit_image(e, img, globals().threads, what, v->klass);
    r.metadata["source"] = std::filesystem::path(v->model).filename().string();
    r.metadata["image_file"] = std::filesystem::path(v->image).filename().string();
    save_record(v->out, r);
    fmt::print(stderr, "wrote {} (prediction {}, p = {}{})\n", v->out, r.metadata["prediction"], r.metadata["score"],
               what.relevance ? ", explained class " + r.metadata["explained"] : "");
  });
}

}  // namespace attnviz::cli
