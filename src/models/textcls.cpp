// Text classifiers: config, vocabulary, batching, model files, evaluation, training, recording.
#include <algorithm>
#include <attnviz/error.hpp>
#include <attnviz/models/model_file.hpp>
#include <attnviz/models/textcls.hpp>
#include <attnviz/engine/attention.hpp>
#include <attnviz/engine/loss.hpp>
#include <attnviz/engine/ops.hpp>
#include <attnviz/engine/optim.hpp>
#include <attnviz/io/safetensors.hpp>

#include "models/textcls_arch.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>

namespace attnviz::models {

using nlohmann::json;

// ---------------------------------------------------------------------------------------- config
void TextClsConfig::validate() const {
  auto need = [](bool ok, const std::string& what) {
    if (!ok) throw UsageError("textcls config: " + what);
  };
  need(arch == "bigru" || arch == "transformer", "arch must be 'bigru' or 'transformer', not '" + arch + "'");
  if (arch == "bigru") {
    need(score == "additive" || score == "general" || score == "scaled-dot",
         "score must be additive, general or scaled-dot, not '" + score + "'");
    need(embed > 0 && hidden > 0 && attn_hidden > 0, "embed, hidden and attn-hidden must be positive");
  } else {
    need(dim > 0 && layers > 0 && heads > 0 && mlp > 0, "dim, layers, heads and mlp must be positive");
    need(dim % heads == 0, "dim must be a multiple of heads");
  }
  need(max_len > 0 && max_len <= 4096, "max-len must be in [1, 4096]");
  need(dropout >= 0.f && dropout < 1.f, "dropout must be in [0, 1)");
  need(word_dropout >= 0.f && word_dropout < 1.f, "word-dropout must be in [0, 1)");
  need(bpe >= 0, "bpe must be 0 or more merges");
  need(vocab > Vocabulary::kSpecials, "empty vocabulary");
  need(classes >= 2, "at least two classes are needed");
}

std::string TextClsConfig::to_json() const {
  json j = {{"arch", arch},     {"score", score},   {"embed", embed}, {"hidden", hidden},
            {"attn_hidden", attn_hidden}, {"dim", dim}, {"layers", layers}, {"heads", heads},
            {"mlp", mlp},       {"max_len", max_len}, {"dropout", dropout}, {"word_dropout", word_dropout}, {"bpe", bpe},
            {"embed_skip", embed_skip}, {"vocab", vocab},
            {"classes", classes}};
  return j.dump();
}

TextClsConfig TextClsConfig::from_json(const std::string& text, const std::string& path) {
  TextClsConfig c;
  try {
    json j = json::parse(text);
    c.arch = j.at("arch").get<std::string>();
    c.score = j.value("score", c.score);
    c.embed = j.value("embed", c.embed);
    c.hidden = j.value("hidden", c.hidden);
    c.attn_hidden = j.value("attn_hidden", c.attn_hidden);
    c.dim = j.value("dim", c.dim);
    c.layers = j.value("layers", c.layers);
    c.heads = j.value("heads", c.heads);
    c.mlp = j.value("mlp", c.mlp);
    c.max_len = j.value("max_len", c.max_len);
    c.dropout = j.value("dropout", c.dropout);
    c.word_dropout = j.value("word_dropout", c.word_dropout);
    c.bpe = j.value("bpe", 0);   // absent before --bpe
    c.embed_skip = j.value("embed_skip", c.embed_skip);
    c.vocab = j.at("vocab").get<int>();
    c.classes = j.at("classes").get<int>();
  } catch (const json::exception& e) {
    throw InputError(path, std::string("bad textcls config in metadata: ") + e.what());
  }
  try {
    c.validate();
  } catch (const UsageError& e) {
    throw InputError(path, e.what());
  }
  return c;
}

// ----------------------------------------------------------------------------- tokens, batches
namespace {
// A word's BPE pieces in its own spelling: cut where the case-folded word's pieces are cut (when
// folding kept the number of code points; else the folded pieces).
std::vector<std::string> pieces_of(const Bpe& bpe, const std::string& word) {
  const std::string folded = fold_case(word);
  std::vector<std::string> p = bpe.segment(folded);
  if (utf8_length(folded) != utf8_length(word) || !utf8_valid(word)) return p;
  size_t pos = 0;
  for (auto& piece : p) {
    const bool cont = piece.size() > 2 && piece.compare(piece.size() - 2, 2, "@@") == 0;
    const size_t n = utf8_length(cont ? piece.substr(0, piece.size() - 2) : piece);
    const size_t start = pos;
    char32_t cp;
    for (size_t k = 0; k < n && pos < word.size(); ++k) utf8_next(word, pos, cp);
    piece = word.substr(start, pos - start) + (cont ? "@@" : "");
  }
  return p;
}
}  // namespace

std::vector<std::string> TextClassifier::tokens(const std::string& text) const {
  std::vector<std::string> t = word_tokens(text);
  if (!bpe_.empty()) {
    std::vector<std::string> pieces;
    for (const auto& w : t) {
      auto p = pieces_of(bpe_, w);
      pieces.insert(pieces.end(), p.begin(), p.end());
    }
    t = std::move(pieces);
  }
  if (static_cast<int>(t.size()) > cfg_.max_len) t.resize(cfg_.max_len);
  if (t.empty()) t.push_back("\xE2\x88\x85");  // "∅": an empty text still has one (unknown) token
  return t;
}

TextBatch TextClassifier::batch(const std::vector<std::string>& texts) const {
  TextBatch b;
  b.B = static_cast<int>(texts.size());
  std::vector<std::vector<int>> ids;
  for (const auto& text : texts) {
    std::vector<int> row;
    for (const auto& t : tokens(text)) row.push_back(vocab_.id(fold_case(t)));
    b.T = std::max(b.T, static_cast<int>(row.size()));
    b.lengths.push_back(static_cast<int>(row.size()));
    ids.push_back(std::move(row));
  }
  b.ids.assign(static_cast<size_t>(b.B) * b.T, Vocabulary::kPad);
  for (int i = 0; i < b.B; ++i)
    std::copy(ids[i].begin(), ids[i].end(), b.ids.begin() + static_cast<std::ptrdiff_t>(i) * b.T);
  return b;
}

namespace {
std::vector<std::vector<std::string>> folded_words(const std::vector<std::string>& texts) {
  std::vector<std::vector<std::string>> docs;
  docs.reserve(texts.size());
  for (const auto& text : texts) {
    std::vector<std::string> d;
    for (const auto& t : word_tokens(text)) d.push_back(fold_case(t));
    docs.push_back(std::move(d));
  }
  return docs;
}
}  // namespace

Vocabulary build_text_vocab(const std::vector<std::string>& texts, int min_count, const Bpe& bpe) {
  auto docs = folded_words(texts);
  for (auto& d : docs) d = bpe.apply(d);
  return Vocabulary::build(docs, VocabOptions{.min_count = std::max(1, min_count)});
}

Bpe learn_text_bpe(const std::vector<std::string>& texts, int merges) {
  return Bpe::learn(folded_words(texts), merges);
}

std::unique_ptr<TextClassifier> make_textcls_model(TextClsConfig cfg, Vocabulary vocab,
                                                   std::vector<std::string> labels, std::uint64_t seed) {
  cfg.vocab = vocab.size();
  cfg.classes = static_cast<int>(labels.size());
  cfg.validate();
  nn::Rng rng(seed);
  if (cfg.arch == "bigru") {
    auto m = std::make_unique<BiGruAttentionClassifier>(cfg, std::move(vocab), std::move(labels));
    m->init(rng);
    return m;
  }
  auto m = std::make_unique<TransformerClassifier>(cfg, std::move(vocab), std::move(labels));
  m->init(rng);
  return m;
}

// -------------------------------------------------------------------------------- model files
std::map<std::string, std::string> TextClassifier::file_metadata() const {
  std::map<std::string, std::string> m = {{"vocab", vocab_.to_json()}, {"labels", json(labels_).dump()}};
  if (!bpe_.empty()) m["bpe"] = bpe_.to_json();
  return m;
}

void save_textcls_model(const std::filesystem::path& path, const TextClassifier& model,
                        const std::map<std::string, std::string>& extra, const StFile* append) {
  save_model(path, model, SaveModelOptions{extra, append});
}

LoadedTextModel load_textcls_model(const std::filesystem::path& path) {
  LoadedModel lm = load_model(path);
  auto* m = dynamic_cast<TextClassifier*>(lm.model.get());
  if (!m) throw_wrong_kind(path, lm.model->kind(), "textcls");
  LoadedTextModel out;
  lm.model.release();
  out.model.reset(m);
  out.metadata = std::move(lm.file.metadata);
  return out;
}

// -------------------------------------------------------------------------------- data source
TextSplit TextDataSource::load() const {
  TextDataset ds = tsv.empty() ? load_fortunes(fortunes) : read_text_tsv(tsv);
  if (ds.labels.size() < 2)
    throw InputError(tsv.string(), "needs at least two different labels, found " + std::to_string(ds.labels.size()));
  return stratified_split(ds, test_fraction, split_seed);
}

std::string TextDataSource::describe() const {
  if (!tsv.empty()) return tsv.string();
  std::string cats;
  for (const auto& c : fortunes.categories) cats += (cats.empty() ? "" : ", ") + c;
  return "fortunes (" + cats + ")";
}

std::map<std::string, std::string> TextDataSource::to_metadata() const {
  std::map<std::string, std::string> m;
  m["data.tsv"] = tsv.string();
  m["data.fortunes_dir"] = fortunes.dir.string();
  m["data.categories"] = json(fortunes.categories).dump();
  m["data.min_words"] = std::to_string(fortunes.min_words);
  m["data.max_words"] = std::to_string(fortunes.max_words);
  m["data.max_per_class"] = std::to_string(fortunes.max_per_class);
  m["data.test_fraction"] = json(test_fraction).dump();
  m["data.split_seed"] = std::to_string(split_seed);
  return m;
}

TextDataSource TextDataSource::from_metadata(const std::map<std::string, std::string>& meta, const std::string& path) {
  TextDataSource d;
  auto get = [&](const char* key) -> const std::string* {
    auto it = meta.find(key);
    return it == meta.end() ? nullptr : &it->second;
  };
  // Each value is parsed as JSON (integers, numbers, arrays) so a corrupt one is named with its key,
  // not reported as the bare "stoi" of std::stoi.
  auto parse = [&](const char* key, const std::string& v) {
    try {
      return json::parse(v);
    } catch (const std::exception&) {
      throw InputError(path, std::string("metadata '") + key + "' is not valid: '" + v.substr(0, 40) + "'");
    }
  };
  auto integer = [&](const char* key, const std::string& v) -> long long {
    const json j = parse(key, v);
    if (!j.is_number_integer()) throw InputError(path, std::string("metadata '") + key + "' is not an integer: '" + v.substr(0, 40) + "'");
    return j.get<long long>();
  };
  if (auto v = get("data.tsv")) d.tsv = *v;
  if (auto v = get("data.fortunes_dir")) d.fortunes.dir = *v;
  if (auto v = get("data.categories")) {
    const json j = parse("data.categories", *v);
    if (!j.is_array() || !std::all_of(j.begin(), j.end(), [](const json& e) { return e.is_string(); }))
      throw InputError(path, "metadata 'data.categories' is not a list of names");
    d.fortunes.categories = j.get<std::vector<std::string>>();
  }
  auto small = [&](const char* key, const std::string& v) {
    const long long x = integer(key, v);
    if (x < 0 || x > 1000000000) throw InputError(path, std::string("metadata '") + key + "' is out of range: " + v);
    return static_cast<int>(x);
  };
  if (auto v = get("data.min_words")) d.fortunes.min_words = small("data.min_words", *v);
  if (auto v = get("data.max_words")) d.fortunes.max_words = small("data.max_words", *v);
  if (auto v = get("data.max_per_class")) d.fortunes.max_per_class = small("data.max_per_class", *v);
  if (auto v = get("data.test_fraction")) {
    const json j = parse("data.test_fraction", *v);
    if (!j.is_number() || !(j.get<double>() > 0 && j.get<double>() < 1))
      throw InputError(path, "metadata 'data.test_fraction' is not a number between 0 and 1: '" + v->substr(0, 40) + "'");
    d.test_fraction = j.get<double>();
  }
  if (auto v = get("data.split_seed")) {
    const json j = parse("data.split_seed", *v);
    if (!j.is_number_unsigned()) throw InputError(path, "metadata 'data.split_seed' is not a non-negative integer: '" + v->substr(0, 40) + "'");
    d.split_seed = j.get<std::uint64_t>();
  }
  return d;
}

// --------------------------------------------------------------------------------- evaluation
namespace {

std::vector<std::string> gather(const std::vector<std::string>& v, const std::vector<int>& idx, size_t from, size_t to) {
  std::vector<std::string> out;
  for (size_t i = from; i < to; ++i) out.push_back(v[idx[i]]);
  return out;
}

}  // namespace

TextEvalResult evaluate_textcls(TextClassifier& model, const TextDataset& data, int batch) {
  TextEvalResult r;
  const size_t n = data.size();
  std::vector<int> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = static_cast<int>(i);
  double loss = 0;
  for (size_t from = 0; from < n; from += batch) {
    size_t to = std::min(n, from + batch);
    Mat p = model.forward(model.batch(gather(data.texts, order, from, to)));   // [b, C]
    nn::softmax_rows(p);
    for (Eigen::Index i = 0; i < p.rows(); ++i) {
      Eigen::Index c = 0;
      float pm = p.row(i).maxCoeff(&c);
      r.predictions.push_back(static_cast<int>(c));
      r.probabilities.push_back(pm);
      loss -= std::log(std::max(1e-12f, p(i, data.y[from + i])));
    }
  }
  r.loss = n ? loss / n : 0;
  r.classes = classification_metrics(data.y, r.predictions, static_cast<int>(model.labels().size()));
  r.set("accuracy", r.classes.accuracy);
  r.set("macro_f1", r.classes.macro_f1);
  r.set("loss", r.loss);
  return r;
}

// ---------------------------------------------------------------------------------- recording
std::vector<AttentionRecord> record_textcls(TextClassifier& model, const std::vector<TextToRecord>& texts,
                                            const RecordOptions& what) {
  std::vector<AttentionRecord> out;
  const auto& labels = model.labels();
  const size_t chunk = 64;
  for (size_t from = 0; from < texts.size(); from += chunk) {
    size_t to = std::min(texts.size(), from + chunk);
    std::vector<std::string> batch_texts;
    for (size_t i = from; i < to; ++i) batch_texts.push_back(texts[i].text);
    AttentionCollector sink(false, what.norms, what.mixing);   // the attention is kept by the model for attention(b)
    Mat p = model.forward(model.batch(batch_texts), nullptr, &sink);   // [b, C]
    nn::softmax_rows(p);
    bool explained = false;
    if (what.relevance) {   // explain each text's predicted class
      std::vector<int> pred(static_cast<size_t>(p.rows()));
      for (Eigen::Index i = 0; i < p.rows(); ++i) p.row(i).maxCoeff(&pred[static_cast<size_t>(i)]);
      explained = model.explain(pred);
    }
    for (size_t i = from; i < to; ++i) {
      const int b = static_cast<int>(i - from);
      const auto& item = texts[i];
      AttentionRecord r;
      r.tensors = model.attention(b);
      if (explained) {
        r.gradients = model.attention_grads(b);
        r.relevance = model.attention_relevance(b);
      }
      r.tokens["tokens"] = model.tokens(item.text);
      r.tokens["query"] = {"pool"};
      if (model.config().arch == "transformer") {
        auto t = r.tokens["tokens"];
        t.insert(t.begin(), "[CLS]");
        r.tokens["tokens_cls"] = std::move(t);
      }
      Eigen::Index c = 0;
      float pm = p.row(b).maxCoeff(&c);
      r.metadata["model"] = model.name();
      r.metadata["arch"] = model.config().arch;
      r.metadata["attention"] = model.config().arch == "bigru" ? model.config().score : "scaled-dot";
      r.metadata["pool"] = model.pool_description();
      if (!model.bpe().empty()) r.metadata["subwords"] = "bpe@@";   // --merge-subwords gives words
      r.metadata["text"] = item.text;
      r.metadata["source"] = item.source;
      r.metadata["prediction"] = labels[c];
      r.metadata["probability"] = std::to_string(pm);
      r.metadata["classes"] = json(labels).dump();
      if (explained) {
        r.metadata["gradients"] = "d(logit " + labels[c] + ")/d(attention)";
        r.metadata["relevance"] = "LRP of logit " + labels[c] +
                                  " (Chefer et al. 2021: alpha=1 beta=0 linear, normalised adds and products)";
      }
      json probs = json::object();
      for (size_t k = 0; k < labels.size(); ++k) probs[labels[k]] = p(b, static_cast<Eigen::Index>(k));
      r.metadata["probabilities"] = probs.dump();
      if (item.label >= 0 && item.label < static_cast<int>(labels.size())) {
        r.metadata["label"] = labels[item.label];
        r.metadata["correct"] = item.label == static_cast<int>(c) ? "true" : "false";
      }
      r.validate("record_textcls");
      out.push_back(std::move(r));
    }
  }
  return out;
}

}  // namespace attnviz::models
