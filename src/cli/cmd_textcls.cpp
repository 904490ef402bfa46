// `attnviz train|eval|record|corpus textcls`: text classifiers with attention over words, their
// bag-of-words baseline, recording pooling weights, and writing the default dataset as TSV.
#include "cli/commands.hpp"
#include "cli/progress.hpp"
#include "cli/record_options.hpp"
#include "cli/snapshot_options.hpp"

#include <attnviz/analysis/bow_baseline.hpp>
#include <attnviz/error.hpp>
#include <attnviz/models/textcls.hpp>
#include <attnviz/train/tasks.hpp>
#include <attnviz/record/record.hpp>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <optional>

namespace attnviz::cli {

namespace {

using models::TextDataSource;

// --data / --categories / --test-fraction / --split-seed.
struct DataOpts {
  std::string tsv;
  std::vector<std::string> categories;
  double test_fraction = 0.2;
  std::uint64_t split_seed = 1;
  int max_words = 60;
};

void add_data_options(CLI::App* sub, DataOpts& d, bool split) {
  sub->add_option("--data", d.tsv, "UTF-8 TSV 'label<TAB>text' (default: the fortunes package)");
  sub->add_option("--categories", d.categories,
                  "fortune categories used as labels (default: computers science politics law food)")
      ->delimiter(',');
  sub->add_option("--max-words", d.max_words, "fortunes: drop entries with more words")->check(positive_number());
  if (split) {
    sub->add_option("--test-fraction", d.test_fraction, "share of each class held out for testing")
        ->check(CLI::Range(0.01, 0.99));
    sub->add_option("--split-seed", d.split_seed, "seed of the stratified train/test split");
  }
}

TextDataSource to_source(const DataOpts& d) {
  TextDataSource s;
  s.tsv = d.tsv;
  if (!d.categories.empty()) s.fortunes.categories = d.categories;
  s.fortunes.max_words = d.max_words;
  s.test_fraction = d.test_fraction;
  s.split_seed = d.split_seed;
  return s;
}

// The data source of a model file, overridden by options the user gave explicitly.
TextDataSource source_for(const std::map<std::string, std::string>& meta, const std::string& path, CLI::App* sub,
                          const DataOpts& d) {
  TextDataSource s = TextDataSource::from_metadata(meta, path);
  if (sub->count("--data")) s.tsv = d.tsv;
  if (sub->count("--categories")) s.fortunes.categories = d.categories;
  if (sub->count("--max-words")) s.fortunes.max_words = d.max_words;
  if (sub->count("--test-fraction")) s.test_fraction = d.test_fraction;
  if (sub->count("--split-seed")) s.split_seed = d.split_seed;
  return s;
}

void check_labels(const TextDataset& data, const models::TextClassifier& model, const std::string& what) {
  if (data.labels != model.labels())
    throw UsageError(what + ": the data's labels differ from the labels the model was trained on");
}

// A resumed run keeps the checkpoint's model: an architecture option given with a different value
// is refused, naming it (the trainer checks the training options the same way).
void refuse_changed_config(const CLI::App& sub, const models::TextClsConfig& asked, const models::TextClsConfig& have,
                           const std::string& path) {
  const nlohmann::json a = nlohmann::json::parse(asked.to_json()), h = nlohmann::json::parse(have.to_json());
  for (const char* opt : {"arch", "score", "embed", "hidden", "dim", "layers", "heads", "max-len", "dropout",
                          "word-dropout", "bpe"}) {
    std::string key = opt;
    for (char& c : key)
      if (c == '-') c = '_';
    if (sub.count(std::string("--") + opt) && a.at(key) != h.at(key))
      throw InputError(path, fmt::format("checkpoint is of a different model: --{} was {} there, {} in this run; "
                                         "resume with the same options", opt, h.at(key).dump(), a.at(key).dump()));
  }
}

// ------------------------------------------------------------------------------------- train
void train_cmd(CLI::App& parent) {
  struct Opts {
    DataOpts data;
    models::TextClsConfig cfg;
    train::TextTrainOptions train;
    int min_count = 2;
    std::string out;
    std::string resume;   // "" with a bare --resume: the model file --out
    SnapshotCli snap;
  };
  auto o = std::make_shared<Opts>();
  o->train.epochs = 15;
  auto* sub = parent.add_subcommand("textcls", "train a text classifier with attention over words (BiGRU or transformer)");
  add_data_options(sub, o->data, true);
  sub->add_option("--arch", o->cfg.arch, "bigru (attention pooling) | transformer (CLS token)")
      ->check(CLI::IsMember({"bigru", "transformer"}));
  sub->add_option("--score", o->cfg.score, "bigru pooling score: additive | general | scaled-dot")
      ->check(CLI::IsMember({"additive", "general", "scaled-dot"}));
  sub->add_option("--embed", o->cfg.embed, "bigru: word embedding width")->check(positive_number());
  sub->add_option("--hidden", o->cfg.hidden, "bigru: GRU state per direction")->check(positive_number());
  sub->add_option("--dim", o->cfg.dim, "transformer: model width")->check(positive_number());
  sub->add_option("--layers", o->cfg.layers, "transformer: encoder blocks")->check(positive_number());
  sub->add_option("--heads", o->cfg.heads, "transformer: attention heads")->check(positive_number());
  sub->add_option("--max-len", o->cfg.max_len, "word tokens kept per text")->check(positive_number());
  sub->add_option("--dropout", o->cfg.dropout, "dropout on embeddings and the pooled vector");
  sub->add_option("--word-dropout", o->cfg.word_dropout, "chance a word is replaced by <unk> while training");
  sub->add_option("--bpe", o->cfg.bpe,
                  "learn N byte-pair merges from the training texts (Sennrich et al. 2016; pieces 'un@@ able', "
                  "records keep them, --merge-subwords gives words); stored in the model (0 = words)")
      ->check(non_negative_number());
  sub->add_option("--min-count", o->min_count, "words seen fewer times in training become <unk>")
      ->check(positive_number());
  sub->add_option("--epochs", o->train.epochs, "passes over the training set")->check(positive_number());
  sub->add_option("--batch", o->train.batch, "texts per step")->check(positive_number());
  sub->add_option("--lr", o->train.lr, "peak learning rate (AdamW, warm-up + cosine)");
  sub->add_option("--seed", o->train.seed, "seed of initialisation, shuffling and dropout");
  sub->add_option("-o,--out", o->out, "model file (.safetensors), also the checkpoint after every epoch")
      ->required();
  sub->add_option("--checkpoint-every", o->train.checkpoint_every, "also write --out every N steps (0 = epochs only)")
      ->check(non_negative_number());
  sub->add_option("--resume", o->resume,
                  "continue the training stored in this checkpoint (a bare --resume: the one in --out; same options)")
      ->expected(0, 1)
      ->default_str("");
  add_snapshot_options(sub, o->snap, "text recorded at each snapshot");
  set_example(sub, "attnviz train textcls --arch bigru --score additive --epochs 15 -o models/textcls.safetensors\n"
                   "  attnviz train textcls --arch transformer -o tc.safetensors --snapshot-every 50 --probe \"the cpu runs hot\"");
  sub->callback([o, sub] {
    check_snapshot_options(o->snap);
    std::unique_ptr<models::TextClassifier> model;
    TextDataSource src = to_source(o->data);
    if (sub->count("--resume")) {
      const std::string from = o->resume.empty() ? o->out : o->resume;
      auto loaded = models::load_textcls_model(from);
      src = source_for(loaded.metadata, from, sub, o->data);
      model = std::move(loaded.model);
      o->train.resume = from;
      refuse_changed_config(*sub, o->cfg, model->config(), from);
    }
    TextSplit sp = src.load();
    if (!model) {
      Bpe bpe = o->cfg.bpe > 0 ? models::learn_text_bpe(sp.train.texts, o->cfg.bpe) : Bpe();
      auto vocab = models::build_text_vocab(sp.train.texts, o->min_count, bpe);
      model = models::make_textcls_model(o->cfg, std::move(vocab), sp.train.labels, o->train.seed);
      model->set_bpe(std::move(bpe));
    }
    check_labels(sp.train, *model, "train textcls");
    o->train.checkpoint = o->out;
    o->train.extra = src.to_metadata();
    const bool quiet = globals().quiet;
    fmt::print(stderr, "data: {} — {} train / {} test texts, {} classes, vocabulary {}\n", src.describe(),
               sp.train.size(), sp.test.size(), sp.train.labels.size(), model->vocab().size());
    std::unique_ptr<ProgressBar> bar;
    train::Callbacks cb;
    cb.on_start = [&](int first, long step) {
      if (first > 0 || step > 0) fmt::print(stderr, "resuming at epoch {}, step {}\n", first + 1, step);
    };
    cb.on_step = [&](const train::StepInfo& s) {
      if (!bar) bar = std::make_unique<ProgressBar>(fmt::format("epoch {}/{}", s.epoch + 1, o->train.epochs), s.steps, !quiet);
      bar->update(s.step, fmt::format("loss {:.3f} acc {:.3f}", s.loss, s.accuracy));
    };
    cb.on_epoch = [&](const train::EpochInfo& e) {
      if (bar) bar->finish(fmt::format("loss {:.3f} train acc {:.3f} | test acc {:.3f} macro-F1 {:.3f}", e.train_loss,
                                       e.train_accuracy, e.eval.get("accuracy"), e.eval.get("macro_f1")));
      bar.reset();
    };
    models::TextClassifier* m = model.get();
    cb = with_snapshot_options(o->snap, cb, [o, m] { return models::record_textcls(*m, {{o->snap.probe, -1, "probe"}})[0]; });
    try {
      train::train_textcls(*model, sp.train, sp.test, o->train, cb);
    } catch (const train::TrainingDiverged& e) {
      throw InputError(o->out, std::string(e.what()) + "; the last checkpoint is kept (try a lower --lr)");
    }
    save_snapshot_records(o->snap, o->out);
    auto r = models::evaluate_textcls(*model, sp.test);
    fmt::print("{} ({}): test accuracy {:.4f}, macro-F1 {:.4f} (n = {}, split seed {}); saved {}\n", model->name(),
               model->config().arch == "bigru" ? model->config().score : "scaled-dot", r.classes.accuracy,
               r.classes.macro_f1, r.classes.n, src.split_seed, o->out);
  });
}

// -------------------------------------------------------------------------------------- eval
void eval_cmd(CLI::App& parent) {
  struct Opts {
    std::string model;
    DataOpts data;
    bool baseline = true;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = parent.add_subcommand("textcls", "accuracy and macro-F1 of a text classifier and of a bag-of-words baseline");
  sub->add_option("--model,MODEL", o->model,
                  "model file from 'train textcls' (also accepted as the first argument, the old spelling)")
      ->required();
  add_data_options(sub, o->data, true);
  sub->add_flag("!--no-baseline", o->baseline, "skip the bag-of-words logistic regression");
  sub->add_flag("--json", o->json, "print a JSON object instead of tables");
  set_example(sub, "attnviz eval textcls --model models/textcls.safetensors");
  sub->callback([o, sub] {
    auto loaded = models::load_textcls_model(o->model);
    auto& model = *loaded.model;
    TextDataSource src = source_for(loaded.metadata, o->model, sub, o->data);
    TextSplit sp = src.load();
    check_labels(sp.test, model, "eval textcls");
    auto r = models::evaluate_textcls(model, sp.test);
    std::optional<ClassMetrics> bow;
    float bow_l2 = 0;
    if (o->baseline) {
      BowModel b = train_bow(sp.train);
      bow = classification_metrics(sp.test.y, b.predict(sp.test.texts), static_cast<int>(sp.test.labels.size()));
      bow_l2 = b.l2;
    }
    if (o->json) {
      nlohmann::json j;
      auto put = [&](const ClassMetrics& m) {
        nlohmann::json per = nlohmann::json::object();
        for (size_t c = 0; c < m.f1.size(); ++c)
          per[sp.test.labels[c]] = {{"precision", m.precision[c]}, {"recall", m.recall[c]}, {"f1", m.f1[c]},
                                    {"support", m.support[c]}};
        return nlohmann::json{{"accuracy", m.accuracy}, {"macro_f1", m.macro_f1}, {"n", m.n}, {"per_class", per},
                              {"confusion", m.confusion}};
      };
      j["data"] = src.describe();
      j["split_seed"] = src.split_seed;
      j["test_fraction"] = src.test_fraction;
      j["model"] = put(r.classes);
      j["model"]["name"] = model.name();
      j["model"]["loss"] = r.loss;
      if (bow) {
        j["bow"] = put(*bow);
        j["bow"]["l2"] = bow_l2;
      }
      fmt::print("{}\n", j.dump(2));
      return;
    }
    fmt::print("data: {}, test fraction {}, split seed {}: {} train / {} test texts\n\n", src.describe(),
               src.test_fraction, src.split_seed, sp.train.size(), sp.test.size());
    fmt::print("{} ({})\n{}\n", model.name(), model.config().arch == "bigru" ? model.config().score : "scaled-dot",
               format_metrics(r.classes, sp.test.labels));
    if (bow) fmt::print("bag-of-words logistic regression (L2 {})\n{}\n", bow_l2, format_metrics(*bow, sp.test.labels));
    fmt::print("{:<34} {:>9} {:>9}\n", "model", "accuracy", "macro-F1");
    fmt::print("{:<34} {:>9.4f} {:>9.4f}\n", model.name(), r.classes.accuracy, r.classes.macro_f1);
    if (bow) fmt::print("{:<34} {:>9.4f} {:>9.4f}\n", "bag-of-words logistic regression", bow->accuracy, bow->macro_f1);
  });
}

// ------------------------------------------------------------------------------------ record
void record_cmd(CLI::App& parent) {
  struct Opts {
    std::string model, out;
    DataOpts data;
    std::vector<std::string> texts;
    std::string label;
    int from_test = 0, misclassified = 0;
    std::vector<std::string> what;   // --record
  };
  auto o = std::make_shared<Opts>();
  auto* sub = parent.add_subcommand("textcls", "record the attention over words of a text classifier");
  sub->add_option("--model,MODEL", o->model,
                  "model file from 'train textcls' (also accepted as the first argument, the old spelling)")
      ->required();
  sub->add_option("--text", o->texts, "a text to classify (repeatable)");
  sub->add_option("--label", o->label, "true label of the --text texts (optional)");
  sub->add_option("--from-test", o->from_test, "N texts spread evenly over the test split")->check(non_negative_number());
  sub->add_option("--misclassified", o->misclassified, "the first N misclassified test texts")
      ->check(non_negative_number());
  add_data_options(sub, o->data, true);
  sub->add_option("-o,--out", o->out, "record file (.safetensors, one sample per text)")->required();
  add_record_what(sub, o->what, true, true);   // transformer only
  set_example(sub, "attnviz record textcls --model models/textcls.safetensors --from-test 8 -o texts.safetensors");
  sub->callback([o, sub] {
    if (o->texts.empty() && o->from_test == 0 && o->misclassified == 0)
      throw UsageError("record textcls: give --text, --from-test N or --misclassified N");
    auto loaded = models::load_textcls_model(o->model);
    auto& model = *loaded.model;
    const models::RecordOptions what = record_what(o->what);
    if ((what.norms || what.mixing || what.relevance) && model.config().arch != "transformer")
      throw UsageError("--record " + o->what.front() + " needs a transformer classifier (" + o->model + " is " +
                       model.config().arch + ")");
    std::vector<models::TextToRecord> items;
    int label = -1;
    if (!o->label.empty()) {
      auto it = std::find(model.labels().begin(), model.labels().end(), o->label);
      if (it == model.labels().end()) throw UsageError("record textcls: unknown --label '" + o->label + "'");
      label = static_cast<int>(it - model.labels().begin());
    }
    for (const auto& t : o->texts) items.push_back({t, label, "text"});
    if (o->from_test > 0 || o->misclassified > 0) {
      TextDataSource src = source_for(loaded.metadata, o->model, sub, o->data);
      TextSplit sp = src.load();
      check_labels(sp.test, model, "record textcls");
      // Evenly spaced over the test split (which is grouped by class), so every class shows up.
      const int n = static_cast<int>(sp.test.size()), take = std::min(o->from_test, n);
      for (int k = 0; k < take; ++k) {
        int i = static_cast<int>(static_cast<long>(k) * n / take);
        items.push_back({sp.test.texts[i], sp.test.y[i], fmt::format("test #{}", i)});
      }
      if (o->misclassified > 0) {
        auto r = models::evaluate_textcls(model, sp.test);
        int n = 0;
        for (size_t i = 0; i < sp.test.size() && n < o->misclassified; ++i)
          if (r.predictions[i] != sp.test.y[i]) {
            items.push_back({sp.test.texts[i], sp.test.y[i], fmt::format("test #{} (misclassified)", i)});
            ++n;
          }
      }
    }
    auto records = models::record_textcls(model, items, what);
    save_records(o->out, records);
    int correct = 0, known = 0;
    for (const auto& r : records)
      if (auto it = r.metadata.find("correct"); it != r.metadata.end()) ++known, correct += it->second == "true";
    fmt::print("recorded {} text(s) with {} ({} of {} with a label predicted correctly) -> {}\n", records.size(),
               model.name(), correct, known, o->out);
  });
}

}  // namespace

void add_train_textcls(CLI::App& p) { train_cmd(p); }
void add_eval_textcls(CLI::App& p) { eval_cmd(p); }
void add_record_textcls(CLI::App& p) { record_cmd(p); }

void add_corpus_textcls(CLI::App& p) {
  struct Opts {
    DataOpts data;
    std::string out;
    std::string part = "all";
  };
  auto o = std::make_shared<Opts>();
  auto* sub = p.add_subcommand("textcls", "write the text-classification dataset (fortunes) as label<TAB>text TSV");
  add_data_options(sub, o->data, true);
  sub->add_option("--part", o->part, "all | train | test (the stratified split)")
      ->check(CLI::IsMember({"all", "train", "test"}));
  sub->add_option("-o,--out", o->out, "TSV file to write")->required();
  set_example(sub, "attnviz corpus textcls -o fortunes.tsv");
  sub->callback([o] {
    TextDataSource src = to_source(o->data);
    TextDataset ds;
    if (o->part == "all") {
      ds = src.tsv.empty() ? load_fortunes(src.fortunes) : read_text_tsv(src.tsv);
    } else {
      TextSplit sp = src.load();
      ds = o->part == "train" ? sp.train : sp.test;
    }
    write_text_tsv(o->out, ds);
    auto n = ds.class_counts();
    std::string counts;
    for (size_t c = 0; c < n.size(); ++c) counts += fmt::format("{}{} {}", c ? ", " : "", ds.labels[c], n[c]);
    fmt::print("wrote {} texts ({}) to {}\n", ds.size(), counts, o->out);
  });
}

}  // namespace attnviz::cli
