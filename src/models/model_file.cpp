// The one model file: save_model / load_model for every family, the tensor check, and the formats
// of the previous release (read as they are).
#include <attnviz/error.hpp>
#include <attnviz/models/mnist.hpp>
#include <attnviz/models/model_file.hpp>
#include <attnviz/models/textcls.hpp>
#include <attnviz/models/translator.hpp>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <set>

namespace attnviz::models {

TranslatorConfig translator_config_from_legacy(const std::map<std::string, std::string>& meta, const std::string& path);

namespace {

std::string shape_str(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

const std::string& need(const StFile& f, const std::string& key, const std::string& path, const std::string& what) {
  auto it = f.metadata.find(key);
  if (it == f.metadata.end()) throw InputError(path, what + " (no '" + key + "' in __metadata__)");
  return it->second;
}

std::vector<std::string> parse_labels(const std::string& text, const std::string& path) {
  try {
    return nlohmann::json::parse(text).get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path, std::string("bad labels in __metadata__: ") + e.what());
  }
}

// Builds an untrained model of `kind` from its config (and the metadata its kind keeps).
std::unique_ptr<Model> make_from_file(const std::string& kind, const std::string& config, const StFile& f,
                                      const std::string& path) {
  if (kind == "mnist") return make_mnist_model(MnistConfig::from_json(config, path), 0);
  if (kind == "textcls") {
    TextClsConfig cfg = TextClsConfig::from_json(config, path);
    Vocabulary vocab = Vocabulary::from_json(need(f, "vocab", path, "textcls model file"), path);
    auto labels = parse_labels(need(f, "labels", path, "textcls model file"), path);
    if (vocab.size() != cfg.vocab || static_cast<int>(labels.size()) != cfg.classes)
      throw InputError(path, fmt::format("config (vocab {}, classes {}) disagrees with the stored vocabulary ({}) "
                                         "or labels ({})", cfg.vocab, cfg.classes, vocab.size(), labels.size()));
    auto m = make_textcls_model(cfg, std::move(vocab), std::move(labels), 0);
    if (f.metadata.count("bpe")) m->set_bpe(Bpe::from_json(f.metadata.at("bpe"), path));
    else if (cfg.bpe > 0)
      throw InputError(path, "the textcls config says bpe " + std::to_string(cfg.bpe) + " but __metadata__ has no 'bpe' merges");
    return m;
  }
  if (kind == "translator") {
    TranslatorConfig cfg = TranslatorConfig::from_json(config, path);
    auto sv = Vocabulary::from_json(need(f, "src_vocab", path, "translator model file"), path);
    auto tv = Vocabulary::from_json(need(f, "tgt_vocab", path, "translator model file"), path);
    try {
      if (cfg.bpe > 0 && (!f.metadata.count("src_bpe") || !f.metadata.count("tgt_bpe")))
        throw InputError(path, "the translator config says bpe " + std::to_string(cfg.bpe) +
                               " but __metadata__ has no 'src_bpe' / 'tgt_bpe' merges");
      auto m = make_translator(cfg, std::move(sv), std::move(tv));
      if (f.metadata.count("src_bpe")) m->src_bpe = Bpe::from_json(f.metadata.at("src_bpe"), path);
      if (f.metadata.count("tgt_bpe")) m->tgt_bpe = Bpe::from_json(f.metadata.at("tgt_bpe"), path);
      return m;
    } catch (const UsageError& e) {
      throw InputError(path, e.what());
    }
  }
  throw InputError(path, "model kind '" + kind + "' is not one load_model builds (mnist, textcls, translator; "
                         "language models load with 'attnviz lm')");
}

}  // namespace

void throw_wrong_kind(const std::filesystem::path& path, const std::string& kind, const std::string& what) {
  throw InputError(path.string(), "this is a " + kind + " model, not a " + what + " model");
}

void load_parameters(nn::ParamSet& params, const StFile& file, const std::string& path,
                     const std::vector<std::string>& ignored_prefixes) {
  std::set<std::string> known;
  for (nn::Param* p : params.params()) {
    known.insert(p->name);
    const std::string expected = fmt::format("[{}, {}]", p->value.rows(), p->value.cols());
    const StTensor* t = file.find(p->name);
    if (!t) throw InputError(path, "tensor '" + p->name + "' is missing (expected " + expected + ")");
    const auto& sh = t->shape;
    const bool same = (sh.size() == 2 && sh[0] == p->value.rows() && sh[1] == p->value.cols()) ||
                      (sh.size() == 1 && sh[0] == p->value.size() && (p->value.rows() == 1 || p->value.cols() == 1));
    if (!same || static_cast<Eigen::Index>(t->data.size()) != p->value.size())
      throw InputError(path, "tensor '" + p->name + "': expected shape " + expected + ", found " + shape_str(sh));
    for (float x : t->data)
      if (!std::isfinite(x)) throw InputError(path, "tensor '" + p->name + "' holds NaN or infinity");
  }
  for (const auto& t : file.tensors) {
    if (known.count(t.name)) continue;
    bool ignored = false;
    for (const auto& pre : ignored_prefixes) ignored = ignored || t.name.rfind(pre, 0) == 0;
    if (!ignored)
      throw InputError(path, "unexpected tensor '" + t.name + "' " + shape_str(t.shape) +
                                 ": expected none of that name (not a parameter of this model)");
  }
  for (nn::Param* p : params.params()) {
    const StTensor* t = file.find(p->name);
    std::copy(t->data.begin(), t->data.end(), p->value.data());
  }
}

void save_model(const std::filesystem::path& path, const Model& model, const SaveModelOptions& opt) {
  StFile f;
  model.params().save_into(f);
  if (opt.extra_tensors)
    for (const auto& t : opt.extra_tensors->tensors) f.tensors.push_back(t);
  f.metadata = opt.metadata;
  for (const auto& [k, v] : model.file_metadata()) f.metadata[k] = v;
  f.metadata["attnviz.model"] = model.kind();
  f.metadata["attnviz.config"] = model.config_json();
  save_safetensors(path, f);
}

LoadedModel load_model(const std::filesystem::path& path) {
  const std::string ps = path.string();
  LoadedModel out;
  out.file = load_safetensors(path);
  const StFile& f = out.file;
  const std::string kind = need(f, "attnviz.model", ps, "not an attnviz model file");
  auto cfg = f.metadata.find("attnviz.config");
  if (cfg != f.metadata.end()) {
    out.format = "attnviz";
    out.model = make_from_file(kind, cfg->second, f, ps);
  } else if (kind == "mnist" || kind == "textcls") {
    // attnviz 0.1 wrote the same config JSON under "config"
    out.format = kind + " 0.1";
    out.model = make_from_file(kind, need(f, "config", ps, "old " + kind + " model file"), f, ps);
  } else if (kind == "translate") {
    // attnviz 0.1 translation files: one metadata key per config field
    out.format = "translate 0.1";
    TranslatorConfig c = translator_config_from_legacy(f.metadata, ps);
    out.model = make_from_file("translator", c.to_json(), f, ps);
  } else {
    throw InputError(ps, "model kind '" + kind + "' has no 'attnviz.config' in __metadata__: not a file this "
                         "release reads (retrain it with 'attnviz train')");
  }
  out.model->upgrade_tensors(out.file);
  load_parameters(out.model->params(), f, ps);
  return out;
}

}  // namespace attnviz::models
