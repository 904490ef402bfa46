// Records of a model run on N inputs of its own data: MNIST test images, held-out sentence pairs or
// texts, sampled LM continuations.
#include "cli/model_records.hpp"
#include "cli/commands.hpp"

#include <attnviz/data/corpus.hpp>
#include <attnviz/data/idx.hpp>
#include <attnviz/error.hpp>
#include <attnviz/models/hf.hpp>
#include <attnviz/models/lm.hpp>
#include <attnviz/models/mnist.hpp>
#include <attnviz/models/model_file.hpp>
#include <attnviz/models/textcls.hpp>
#include <attnviz/models/translator.hpp>
#include <attnviz/text/lm_tokenizer.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <fstream>

namespace attnviz::cli {

namespace fs = std::filesystem;

namespace {

// GGUF (magic) and minGPT JSON (an object) files are LMs; attnviz model files are safetensors.
bool is_lm_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw InputError(p.string(), "cannot open the model");
  char head[4] = {};
  f.read(head, 4);
  if (f.gcount() == 4 && std::string(head, 4) == "GGUF") return true;
  f.clear();
  f.seekg(0);
  char c = 0;
  while (f.get(c) && (c == ' ' || c == '\n' || c == '\r' || c == '\t')) {}
  return c == '{';
}

void need_what(const models::RecordOptions& what, bool norms, bool mixing, const std::string& model) {
  if ((what.norms && !norms) || (what.mixing && !mixing))
    throw UsageError(fmt::format("--record {}: not available for {}", what.mixing && !mixing ? "mixing" : "norms", model));
}

ModelRecords from_lm(const ModelInputs& in) {
  models::LoadedLm lm = models::load_lm(in.model);
  need_what(in.what, true, true, in.model + " (a decoder LM)");
  const models::LmConfig& cfg = lm.model->config();
  const LmTokenizer* tok = lm.tokenizer.get();
  ModelRecords out;
  for (int k = 0; k < in.inputs; ++k) {
    models::GenerateOptions g;
    g.prompt = tok && tok->bos() >= 0 ? std::vector<int>{tok->bos()} : std::vector<int>{k % cfg.vocab};
    g.steps = std::min(in.steps, cfg.context - 1);
    g.sampler.temperature = in.temperature;
    g.seed = static_cast<std::uint64_t>(k + 1);
    g.record = true;
    g.norms = in.what.norms;
    g.mixing = in.what.mixing;
    g.threads = globals().threads;
    if (tok && tok->eos() >= 0) g.stop_ids.push_back(tok->eos());
    models::GenerateResult r = models::generate(*lm.model, g, tok);
    out.records.push_back(std::move(*r.record));
    out.sources.push_back(fmt::format("{} (continuation {}, seed {})", in.model, k, k + 1));
  }
  out.description = fmt::format("{} continuations of up to {} tokens of {} (temperature {})", in.inputs,
                                std::min(in.steps, cfg.context - 1), cfg.name.empty() ? in.model : cfg.name, in.temperature);
  return out;
}

}  // namespace

ModelRecords records_from_model(const ModelInputs& in) {
  if (in.inputs <= 0) throw UsageError("--inputs must be a positive number");
  const fs::path path = in.model;
  if (models::is_hf_dir(path)) {
    const std::string type = models::hf_model_type(path);
    if (models::hf_is_encoder(type))
      throw UsageError(fmt::format("{}: a pretrained {} has no data of its own: record inputs with `attnviz record {}`, "
                                   "then `attnviz stats FILES`", in.model, type, type == "vit" ? "vit" : "encoder"));
    return from_lm(in);
  }
  if (is_lm_file(path)) return from_lm(in);

  models::LoadedModel loaded = models::load_model(path);
  ModelRecords out;
  if (auto* m = dynamic_cast<models::MnistModel*>(loaded.model.get())) {
    need_what(in.what, m->config().arch == "vit", m->config().arch == "vit", in.model + " (the pooling model)");
    const ImageSet test = load_mnist(mnist_dir(), "test");
    std::vector<int> idx;
    for (int i = 0; i < std::min(in.inputs, test.count); ++i) idx.push_back(i);
    out.records = models::record_mnist(*m, test, idx, path.stem().string(), in.what);
    for (int i : idx) out.sources.push_back(fmt::format("{} (test image {})", in.model, i));
    out.description = fmt::format("MNIST test images 0..{} ({})", idx.size() - 1, m->config().arch);
  } else if (auto* t = dynamic_cast<models::Translator*>(loaded.model.get())) {
    need_what(in.what, t->config.arch == "transformer", t->config.arch == "transformer", in.model + " (" + t->name() + ")");
    ParallelCorpus corpus;
    if (in.corpus.empty()) {
      corpus = generate_synthetic({.count = in.inputs, .seed = 1000, .split = SyntheticSplit::Test});
    } else {
      CorpusOptions o;
      o.tokenizer = t->config.tokenizer;
      o.pretokenized = t->config.pretokenized;
      o.max_pairs = in.inputs;
      corpus = read_corpus(in.corpus, o);
    }
    const auto data = models::encode_corpus(*t, corpus);
    for (size_t i = 0; i < data.size() && static_cast<int>(i) < in.inputs; ++i) {
      out.records.push_back(models::record_translation(*t, data[i].src, data[i].tgt, &corpus.pairs[i].source,
                                                       &corpus.pairs[i].target, in.what));
      out.sources.push_back(fmt::format("{} (pair {})", in.model, i));
    }
    out.description = fmt::format("{} held-out pairs ({}), reference targets", out.records.size(),
                                  in.corpus.empty() ? "the built-in generator's test split, seed 1000" : in.corpus);
  } else if (auto* c = dynamic_cast<models::TextClassifier*>(loaded.model.get())) {
    need_what(in.what, c->config().arch == "transformer", c->config().arch == "transformer", in.model + " (" + c->name() + ")");
    const TextSplit sp = models::TextDataSource::from_metadata(loaded.file.metadata, in.model).load();
    const int n = static_cast<int>(sp.test.size()), take = std::min(in.inputs, n);
    std::vector<models::TextToRecord> items;
    for (int k = 0; k < take; ++k) {   // evenly spaced: the split is grouped by class
      const int i = static_cast<int>(static_cast<long>(k) * n / take);
      items.push_back({sp.test.texts[i], sp.test.y[i], fmt::format("test #{}", i)});
      out.sources.push_back(fmt::format("{} (test text {})", in.model, i));
    }
    out.records = models::record_textcls(*c, items, in.what);
    out.description = fmt::format("{} held-out texts spread over the test split", take);
  } else {
    throw UsageError(in.model + ": stats --model takes MNIST, translator and text-classifier models and decoder LMs");
  }
  if (out.records.empty()) throw UsageError(in.model + ": no inputs to run");
  return out;
}

}  // namespace attnviz::cli
