// `attnviz train|eval|record|corpus translate`: train seq2seq translators on a TSV corpus or the
// built-in generator, evaluate them (exact match, BLEU-4, AER), record their attention, write the
// built-in corpus as TSV.
#include "cli/commands.hpp"
#include "cli/progress.hpp"
#include "cli/record_options.hpp"
#include "cli/snapshot_options.hpp"

#include <attnviz/analysis/alignment.hpp>
#include <attnviz/analysis/statistical_aligner.hpp>
#include <attnviz/io/atomic_file.hpp>
#include <attnviz/io/printable.hpp>
#include <attnviz/error.hpp>
#include <attnviz/engine/ops.hpp>
#include <attnviz/models/translator.hpp>
#include <attnviz/train/tasks.hpp>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <algorithm>
#include <memory>

namespace attnviz::cli {

namespace fs = std::filesystem;
using namespace attnviz::models;

namespace {

// Where the sentence pairs come from: a file, or the generator.
struct DataOptions {
  std::string corpus;
  int synthetic = 0;
  std::uint64_t seed = 1;
  std::string columns;
  bool lowercase = false, pretokenized = false, one_indexed = false, gold_all_sure = false;
  int max_pairs = 0, max_tokens = 50;
};

// `train translate` has a model seed too, so there `--seed` is the model's (as in every train
// command) and the generator's seed is only `--data-seed`; eval/record keep `--seed` as the old
// spelling of `--data-seed`.
void add_data_options(CLI::App* sub, DataOptions& d, int default_synthetic, std::uint64_t default_seed,
                      bool seed_is_data_seed) {
  d.synthetic = default_synthetic;
  d.seed = default_seed;
  sub->add_option("--corpus", d.corpus, "UTF-8 TSV source<TAB>target[<TAB>gold] (or 'source ||| target' lines)");
  sub->add_option("--synthetic", d.synthetic, "use N pairs of the built-in generator (when no --corpus)")
      ->check(positive_number());
  if (seed_is_data_seed)
    sub->add_option("--data-seed,--seed", d.seed, "seed of the built-in generator (--seed: old spelling)");
  else
    sub->add_option("--data-seed", d.seed, "seed of the built-in generator");
  sub->add_option("--columns", d.columns, "1-based columns to read: source,target[,gold] (e.g. 1,2 for Tatoeba exports)");
  sub->add_flag("--one-indexed,--gold-one-indexed", d.one_indexed, "gold links in the corpus are 1-based");
  sub->add_flag("--gold-all-sure", d.gold_all_sure, "count every gold link as sure, possible ones too (aer.py --allSure)");
  sub->add_option("--max-pairs", d.max_pairs, "read at most N pairs (0 = all)")->check(non_negative_number());
  sub->add_option("--max-tokens", d.max_tokens, "skip pairs with a side longer than N tokens (0 = keep all)")
      ->check(non_negative_number());
}

// Reads the corpus; for the generator, `split` picks train or held-out sentences.
ParallelCorpus load_data(const DataOptions& d, SyntheticSplit split, const TokenizerOptions& tok, bool pretokenized) {
  if (!d.corpus.empty()) {
    CorpusOptions o;
    if (!d.columns.empty()) parse_columns(d.columns, o);
    o.tokenizer = tok;
    o.pretokenized = pretokenized;
    o.one_indexed = d.one_indexed;
    o.gold_all_sure = d.gold_all_sure;
    o.max_pairs = d.max_pairs;
    o.max_tokens = d.max_tokens;
    auto c = read_corpus(d.corpus, o);
    for (const auto& note : c.notes) fmt::print(stderr, "note: {}\n", note);  // pairs dropped and why, gold hints
    return c;
  }
  return generate_synthetic({.count = d.synthetic, .seed = d.seed, .split = split});
}

// Small matrices: one thread unless --threads asks for more (nn::thread_count).
void default_threads() { nn::use_threads(globals().threads, nn::Workload::SmallMatrices); }

std::string pct(double x) { return fmt::format("{:.1f}%", 100.0 * x); }

}  // namespace

// ---------------------------------------------------------------------------------------------
void add_train_translate(CLI::App& parent) {
  struct Opts {
    DataOptions data;
    TranslatorConfig cfg;
    Opts() { train.epochs = 4; }
    std::string attention = "additive";
    train::TranslateTrainOptions train;
    int min_count = 1;
    std::string out = "models/translate.safetensors";
    std::string resume;   // checkpoint to continue from ("" with --resume = OUT.ckpt)
    bool resume_given = false;
    int heldout = 200;
    long long split_seed = -1;  // -1: hold out the file's last lines
    std::string normalize = "none";
    bool guide_ibm1 = true;   // rnn default; --no-guide turns it off (the transformer has none)
    StatAlignOptions guide;   // diagonal tension 4: the aligner's default (align --train-ibm1)
    std::string guide_sym = "grow-diag-final-and";
    SnapshotCli snap;
    std::string probe_target;
  };
  auto o = std::make_shared<Opts>();
  o->cfg.guide = kDefaultGuideWeight;
  auto* sub = parent.add_subcommand("translate", "train a translation model (RNN with one of four attentions, or transformer)");
  add_data_options(sub, o->data, 10000, 1, false);
  sub->add_flag("--lowercase", o->cfg.tokenizer.lowercase, "lowercase the text (Unicode: Ș -> ș, Ω -> ω)");
  sub->add_option("--normalize", o->normalize,
                  "Unicode normalization before tokenizing: none | nfc | nfkc | nfkc-ro (nfkc, and Romanian "
                  "cedilla ş ţ -> comma-below ș ț); kept in the model")
      ->check(CLI::IsMember({"none", "nfc", "nfkc", "nfkc-ro"}));
  sub->add_flag("--strip-diacritics", o->cfg.tokenizer.strip_diacritics, "remove accents and other marks (ș -> s, é -> e)");
  sub->add_flag("--pretokenized", o->cfg.pretokenized, "text is already tokenized: split on spaces only");
  sub->add_option("--min-count", o->min_count, "words seen fewer times become <unk>")->check(positive_number());
  sub->add_option("--arch", o->cfg.arch, "rnn | transformer")->check(CLI::IsMember({"rnn", "transformer"}));
  sub->add_option("--attention", o->attention, "rnn scoring: additive | dot | general | scaled-dot")
      ->check(CLI::IsMember({"additive", "dot", "general", "scaled-dot"}));
  sub->add_option("--query", o->cfg.query,
                  "rnn: decoder state that queries the attention: current (s_t, Luong) | previous (s_{t-1}, Bahdanau)")
      ->check(CLI::IsMember({"current", "previous"}));
  sub->add_option("--embed", o->cfg.embed, "rnn: embedding width")->check(CLI::Range(1, 4096));
  sub->add_option("--hidden", o->cfg.hidden, "rnn: GRU width per encoder direction (decoder: 2x)")->check(CLI::Range(1, 4096));
  sub->add_option("--dim", o->cfg.dim, "transformer: model width")->check(CLI::Range(1, 4096));
  sub->add_option("--heads", o->cfg.heads, "transformer: heads")->check(CLI::Range(1, 64));
  sub->add_option("--layers", o->cfg.layers, "transformer: encoder and decoder layers")->check(CLI::Range(1, 64));
  sub->add_option("--ff", o->cfg.ff, "transformer: MLP width")->check(CLI::Range(1, 65536));
  sub->add_option("--dropout", o->cfg.dropout, "dropout (transformer)")->check(CLI::Range(0.0, 0.9));
  sub->add_option("--coverage", o->cfg.coverage,
                  fmt::format("rnn: weight of the coverage penalty (every source word attended about once in "
                              "total); default {} for additive attention, 0 for the others", kDefaultAdditiveCoverage))
      ->check(CLI::Range(0.0, 100.0))
      ->default_str("auto");
  sub->add_option("--bpe", o->cfg.bpe,
                  "learn N byte-pair merges per side from the training pairs (Sennrich et al. 2016; pieces "
                  "'un@@ able'); stored in the model, applied at eval/record time (0 = word vocabularies)")
      ->check(non_negative_number());
  auto* guide_flag = sub->add_flag(
      "--guide-ibm1,!--no-guide", o->guide_ibm1,
      "rnn, on by default: guided alignment (Chen et al. 2016, Garg et al. 2019): train the attention towards the "
      "links of the built-in aligner (align --train-ibm1: IBM Model 1 with the diagonal prior) run on the training "
      "pairs; --no-guide: train without it (--guide-ibm1: old spelling of the default)");
  auto* guide_weight = sub->add_option("--guide-weight", o->cfg.guide, "guided alignment: weight of the alignment cross-entropy (0 = off)")
      ->check(CLI::Range(0.0, 100.0))->capture_default_str();
  auto* guide_tension = sub->add_option("--guide-tension", o->guide.diagonal_tension,
                  "guided alignment: the aligner's diagonal tension (0 = plain Model 1)")
      ->check(CLI::Range(0.0, 1000.0))->capture_default_str();
  auto* guide_sym = sub->add_option("--guide-symmetrize", o->guide_sym, "guided alignment: symmetrization of the aligner's two directions")
      ->capture_default_str();
  sub->add_option("--epochs", o->train.epochs, "passes over the training data")->check(positive_number());
  sub->add_option("--batch", o->train.batch, "sentence pairs per step")->check(positive_number());
  sub->add_option("--lr", o->train.lr, "peak Adam learning rate (warm-up, then cosine decay)")->check(positive_number());
  sub->add_option("--clip", o->train.clip, "clip gradients to this global norm")->check(positive_number());
  sub->add_option("--seed,--init-seed", o->train.seed,
                  "seed of the initial weights and the batch order (--init-seed: old spelling, kept for one "
                  "release; the generator's seed is --data-seed)");
  sub->add_option("--heldout", o->heldout,
                  "held-out pairs evaluated after training (0 = none): the corpus file's LAST N lines (on a "
                  "length-sorted corpus, the longest sentences), or N random pairs with --split-seed")
      ->check(non_negative_number());
  sub->add_option("--split-seed", o->split_seed, "hold out N random pairs (seeded) instead of the file's last N")
      ->check(non_negative_number());
  sub->add_option("-o,--out", o->out, "model file (a checkpoint OUT.ckpt is written after every epoch)");
  sub->add_option("--checkpoint-every", o->train.checkpoint_every, "also write OUT.ckpt every N steps (0 = epochs only)")
      ->check(non_negative_number());
  sub->add_option("--resume", o->resume,
                  "continue from this checkpoint (e.g. OUT.ckpt) with the same options; a bare --resume (old "
                  "spelling) means OUT.ckpt")
      ->expected(0, 1)
      ->default_str("");
  add_snapshot_options(sub, o->snap, "source sentence recorded at each snapshot (with its greedy translation then, or "
                                     "--probe-target)");
  sub->add_option("--probe-target", o->probe_target, "target sentence forced at every snapshot (same shape in every frame)");
  set_example(sub, "attnviz train translate --synthetic 20000 --attention dot --out models/dot.safetensors\n"
                   "  attnviz train translate --arch transformer --out tf.safetensors --snapshot-every 100 --probe \"the red car sees a dog .\"");
  auto* resume_opt = sub->get_option("--resume");
  sub->callback([o, resume_opt, guide_flag, guide_weight, guide_tension, guide_sym] {
    default_threads();
    check_snapshot_options(o->snap);
    if (!o->probe_target.empty() && !o->snap.on()) throw UsageError("--probe-target goes with --probe");
    o->resume_given = resume_opt->count() > 0;
    o->cfg.attention = nn::parse_score(o->attention);
    o->cfg.tokenizer.normalize = parse_normalization(o->normalize);
    o->guide.symmetrize = parse_symmetrize(o->guide_sym);
    // The guide is the rnn default; the transformer has none (asking for it by name is refused).
    const bool guide_named = guide_flag->count() > 0 && o->guide_ibm1;
    if (o->cfg.arch != "rnn") {
      if (guide_named) throw UsageError("--guide-ibm1 trains rnn attention; the transformer has no guided alignment yet");
      o->guide_ibm1 = false;
    }
    if (!o->guide_ibm1 && guide_flag->count() > 0)
      for (const auto* opt : {guide_weight, guide_tension, guide_sym})
        if (opt->count() > 0) throw UsageError(opt->get_name() + " sets up guided alignment, which --no-guide turns off");
    if (o->cfg.guide == 0.f) o->guide_ibm1 = false;   // --guide-weight 0: off as well
    if (!o->guide_ibm1) o->cfg.guide = 0.f;
    const fs::path out = o->out, ckpt = fs::path(o->out + ".ckpt");
    if (!out.parent_path().empty()) fs::create_directories(out.parent_path());
    // Data: generator train split (held-out sentences never appear in it), or the user's file
    // with its last `heldout` pairs kept aside.
    // `source ||| target` files are tokenized already: the model keeps splitting on spaces.
    if (!o->data.corpus.empty() && is_bitext_file(o->data.corpus)) o->cfg.pretokenized = true;
    ParallelCorpus all = load_data(o->data, SyntheticSplit::Train, o->cfg.tokenizer, o->cfg.pretokenized);
    ParallelCorpus train = all, held;
    if (!o->data.corpus.empty() && o->heldout > 0) {
      auto split = split_heldout(all, o->heldout,
                                 o->split_seed < 0 ? std::nullopt : std::optional<std::uint64_t>(o->split_seed));
      train = std::move(split.train), held = std::move(split.held);
    } else if (o->data.corpus.empty() && o->heldout > 0) {
      held = generate_synthetic({.count = o->heldout, .seed = o->data.seed + 7919, .split = SyntheticSplit::Test});
    }
    const bool resume = o->resume_given;
    const fs::path resume_from = o->resume.empty() ? ckpt : fs::path(o->resume);
    std::unique_ptr<Translator> model;
    if (resume) {
      // The model (config, vocabularies) comes from the checkpoint; the trainer checks the options.
      if (!fs::exists(resume_from)) throw InputError(resume_from.string(), "no checkpoint to resume from");
      model = load_translator(resume_from);
      auto probe = make_translator(o->cfg, model->src_vocab, model->tgt_vocab);
      if (probe->config_json() != model->config_json()) model = std::move(probe);   // refused by the trainer, naming the option
    } else {
      std::vector<std::vector<std::string>> s, t;
      for (const auto& p : train.pairs) s.push_back(p.source), t.push_back(p.target);
      Bpe sb, tb;
      if (o->cfg.bpe > 0) {
        sb = Bpe::learn(s, o->cfg.bpe), tb = Bpe::learn(t, o->cfg.bpe);
        for (auto& x : s) x = sb.apply(x);
        for (auto& x : t) x = tb.apply(x);
      }
      model = make_translator(o->cfg, Vocabulary::build(s, {.min_count = o->min_count}),
                              Vocabulary::build(t, {.min_count = o->min_count}));
      model->src_bpe = std::move(sb), model->tgt_bpe = std::move(tb);
      model->init(o->train.seed);
    }
    auto data = encode_corpus(*model, train);
    const bool quiet = globals().quiet;
    if (o->guide_ibm1) {
      o->guide.corpus_path = o->data.corpus;
      attach_guide(*model, train, data, o->guide);
      if (!quiet)
        fmt::print(stderr,
                   "guided alignment (--no-guide: off): the aligner's links (IBM Model 1, diagonal tension {:g}, {}) on {} "
                   "training pairs, weight {:g}\n",
                   o->guide.diagonal_tension, symmetrize_name(o->guide.symmetrize), data.size(), model->config.guide);
    }
    if (!quiet)
      fmt::print(stderr, "{}: {} training pairs, vocab {} -> {}, {} parameters\n", model->name(), data.size(),
                 model->src_vocab.size(), model->tgt_vocab.size(), model->params().count());
    train::TranslateTrainOptions topt = o->train;
    topt.checkpoint = ckpt;
    if (resume) topt.resume = resume_from;
    std::unique_ptr<ProgressBar> bar;
    train::Callbacks cb;
    cb.on_start = [&](int epoch, long step) {
      if ((epoch > 0 || step > 0) && !quiet) fmt::print(stderr, "resuming at epoch {}, step {}\n", epoch + 1, step);
    };
    cb.on_step = [&](const train::StepInfo& si) {
      if (quiet) return;
      if (!bar) bar = std::make_unique<ProgressBar>(fmt::format("epoch {}/{}", si.epoch + 1, topt.epochs), si.steps);
      bar->update(si.step, fmt::format("loss {:.3f}", si.loss));
    };
    cb.on_epoch = [&](const train::EpochInfo& e) {
      if (bar) bar->finish(fmt::format("loss {:.3f} token acc {}", e.train_loss, pct(e.train_accuracy)));
      bar.reset();
    };
    Translator* m = model.get();
    cb = with_snapshot_options(o->snap, cb, [o, m] {
      const auto words = tokenize_for(m->config, o->snap.probe);
      const auto src = m->encode_source(words);
      if (o->probe_target.empty()) {
        AttentionRecord r = record_translation(*m, src, greedy_decode(*m, {src})[0], &words, nullptr);
        r.metadata["input_text"] = o->snap.probe;
        return r;
      }
      const auto target = tokenize_for(m->config, o->probe_target);
      AttentionRecord r = record_translation(*m, src, m->encode_target(target), &words, &target);
      r.metadata["input_text"] = o->snap.probe;
      return r;
    });
    train::train_translator(*model, data, topt, cb);
    save_snapshot_records(o->snap, out);
    save_translator(out, *model, {{"epochs", std::to_string(o->train.epochs)}});
    fmt::print("saved {} ({})\n", out.string(), model->name());
    if (held.size() > 0) {
      auto r = evaluate_translator(*model, held, {});
      fmt::print("held-out {} pairs: exact match {}  BLEU-4 {:.2f}", r.sentences, pct(double(r.exact) / r.sentences),
                 100 * r.bleu.bleu);
      for (const auto& a : r.alignment) fmt::print("  AER {} {}", a.tensor, pct(a.score.aer()));
      fmt::print("\n");
    }
  });
}

// ---------------------------------------------------------------------------------------------
void add_eval_translate(CLI::App& parent) {
  struct Opts {
    DataOptions data;
    std::vector<std::string> models;
    std::string reverse_model, symmetrize = "grow-diag-final-and", combine = "product";
    EvalOptions eval;
    std::string method = "argmax";
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = parent.add_subcommand("translate", "exact match, BLEU-4 and alignment precision/recall/AER, one row per model");
  sub->add_option("--model", o->models, "model file(s)")->required();
  add_data_options(sub, o->data, 500, 1000, true);
  sub->add_option("--beam", o->eval.beam, "beam width (1 = greedy)")->check(positive_number());
  sub->add_option("--length-penalty", o->eval.length_penalty, "beam: score / length^alpha");
  sub->add_option("--method", o->method, "alignment extraction: argmax | itermax | intersect | threshold")
      ->check(CLI::IsMember({"argmax", "itermax", "intersect", "threshold"}));
  sub->add_option("--threshold", o->eval.align.threshold, "threshold method: minimum weight");
  sub->add_option("--reverse-model", o->reverse_model,
                  "a model of the opposite direction (trained on the same pairs with --columns swapped): AER is "
                  "scored on both models' attention symmetrized (--symmetrize); BLEU stays each --model's");
  sub->add_option("--combine", o->combine,
                  "--reverse-model: product (default: one matrix, the forward attention times the reverse's "
                  "transposed; its rows and columns give the two directions' links) | none (each model's own links)");
  sub->add_option("--symmetrize", o->symmetrize,
                  "--reverse-model: intersect | union | grow-diag | grow-diag-final | grow-diag-final-and (default) | "
                  "forward | reverse");
  sub->add_flag("--json", o->json, "print JSON instead of a table");
  sub->add_flag("--relevance", o->eval.relevance,
                "also score the relevance maps decoder.relevance_cross and decoder.lrp_relevance_cross (Chefer, Gur & "
                "Wolf 2021; transformer models only)");
  sub->add_flag("--mixing", o->eval.mixing,
                "also score each decoder layer's value-zeroing cross map decoder.layerN.cross.mixing (what 'record "
                "translate --record mixing' writes; Mohebbi et al. 2023; transformer models only)");
  sub->add_flag("--pretokenized", o->data.pretokenized, "the corpus text is already tokenized: split on spaces only "
                                                        "(gold links count space-separated words)");
  set_example(sub, "attnviz eval translate --model models/additive.safetensors --model models/dot.safetensors --synthetic 500");
  sub->callback([o] {
    default_threads();
    o->eval.align.method = parse_align_method(o->method);
    o->eval.symmetrize = parse_symmetrize(o->symmetrize);
    o->eval.combine = parse_combine(o->combine);
    std::unique_ptr<Translator> reverse;
    if (!o->reverse_model.empty()) {
      reverse = load_translator(o->reverse_model);
      o->eval.reverse = reverse.get();
    }
    nlohmann::json js = nlohmann::json::array();
    // Rows are labelled by file: several models of one kind (seeds, sizes) would otherwise print
    // identical labels. The file name, or the whole path when two files share a name.
    std::vector<std::string> names, labels;
    for (const auto& path : o->models) names.push_back(fs::path(path).filename().string());
    for (size_t i = 0; i < names.size(); ++i)
      labels.push_back(std::count(names.begin(), names.end(), names[i]) > 1 ? o->models[i] : names[i]);
    size_t w = 22;
    for (const auto& l : labels) w = std::max(w, printable_for_terminal(l).size());
    // The header goes out with the first row, so that a first model refused (--relevance or --mixing
    // on an RNN) leaves one line on the terminal, the error.
    bool header = o->json;
    for (size_t mi = 0; mi < o->models.size(); ++mi) {
      const auto& path = o->models[mi];
      const std::string label = printable_for_terminal(labels[mi]);
      auto model = load_translator(path);
      if (o->eval.relevance && model->config.arch != "transformer")
        throw InputError(path, "--relevance needs a transformer translator; this model is " + model->name());
      if (o->eval.mixing && model->config.arch != "transformer")
        throw InputError(path, "--mixing needs a transformer translator; this model is " + model->name());
      auto corpus = load_data(o->data, SyntheticSplit::Test, model->config.tokenizer,
                              model->config.pretokenized || o->data.pretokenized);
      auto r = evaluate_translator(*model, corpus, o->eval);
      nlohmann::json j = {{"model", path},
                          {"name", model->name()},
                          {"attention", model->attention_kind()},
                          {"pairs", r.sentences},
                          {"exact_match", double(r.exact) / r.sentences},
                          {"bleu4", r.bleu.bleu},
                          {"bleu_precisions", {r.bleu.precisions[0], r.bleu.precisions[1], r.bleu.precisions[2], r.bleu.precisions[3]}},
                          {"brevity_penalty", r.bleu.brevity_penalty},
                          {"beam", o->eval.beam},
                          {"alignment_method", o->method},
                          {"reverse_model", o->reverse_model.empty() ? nlohmann::json() : nlohmann::json(o->reverse_model)},
                          {"symmetrize", o->reverse_model.empty() ? nlohmann::json() : nlohmann::json(o->symmetrize)},
                          {"combine", o->reverse_model.empty() ? nlohmann::json() : nlohmann::json(o->combine)},
                          {"seconds", r.seconds}};
      nlohmann::json al = nlohmann::json::array();
      for (const auto& a : r.alignment)
        al.push_back({{"tensor", a.tensor}, {"precision", a.score.precision()}, {"recall", a.score.recall()},
                      {"aer", a.score.aer()}, {"predicted", a.score.predicted}, {"sure", a.score.sure}});
      j["alignment"] = al;
      js.push_back(j);
      if (!header) {
        fmt::print("{:<{}} {:>12} {:>10} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7}  {}\n", "file", w, "model", "attention", "pairs",
                   "exact", "BLEU-4", "AER", "prec", "recall", "tensor");
        header = true;
      }
      if (!o->json) {
        if (r.alignment.empty())
          fmt::print("{:<{}} {:>12} {:>10} {:>6} {:>7} {:>7.2f} {:>7} {:>7} {:>7}  (no gold)\n", label, w, model->name(),
                     model->attention_kind(), r.sentences, pct(double(r.exact) / r.sentences), 100 * r.bleu.bleu, "-",
                     "-", "-");
        for (size_t l = 0; l < r.alignment.size(); ++l) {
          const auto& a = r.alignment[l];
          if (l == 0)
            fmt::print("{:<{}} {:>12} {:>10} {:>6} {:>7} {:>7.2f} {:>7} {:>7} {:>7}  {}\n", label, w, model->name(),
                       model->attention_kind(), r.sentences, pct(double(r.exact) / r.sentences), 100 * r.bleu.bleu,
                       pct(a.score.aer()), pct(a.score.precision()), pct(a.score.recall()), a.tensor);
          else
            fmt::print("{:<{}} {:>12} {:>10} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7}  {}\n", "", w, "", "", "", "", "",
                       pct(a.score.aer()), pct(a.score.precision()), pct(a.score.recall()), a.tensor);
        }
      }
    }
    if (o->json) fmt::print("{}\n", js.size() == 1 ? js[0].dump(2) : js.dump(2));
    else fmt::print("BLEU-4: corpus-level, one reference, on the tokenizer's tokens (the model's tokenization)\n");
  });
}

// ---------------------------------------------------------------------------------------------
void add_record_translate(CLI::App& parent) {
  struct Opts {
    DataOptions data;
    std::string model, text, out = "translation.safetensors";
    std::vector<std::string> from;  // 0-based indices, or "all"
    std::vector<std::string> what;  // --record
    int beam = 1;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = parent.add_subcommand("translate", "translate and save every attention matrix as a record");
  sub->add_option("--model", o->model, "model file")->required();
  sub->add_option("--text", o->text, "a source sentence to translate");
  sub->add_option("--from-corpus", o->from,
                  "0-based pair indices of the corpus, or 'all' (reference target forced, gold attached)")
      ->delimiter(',');
  add_data_options(sub, o->data, 500, 1000, true);
  sub->add_flag("--pretokenized", o->data.pretokenized, "the corpus text is already tokenized: split on spaces only");
  sub->add_option("--beam", o->beam, "beam width for --text (1 = greedy)")->check(positive_number());
  sub->add_option("-o,--out", o->out, "output record (.safetensors)");
  add_record_what(sub, o->what, true, true);   // transformer only
  set_example(sub, "attnviz record translate --model models/additive.safetensors --text \"the red car sees a dog .\" -o rec.safetensors");
  sub->callback([o] {
    default_threads();
    if (o->text.empty() == o->from.empty()) throw UsageError("give either --text or --from-corpus");
    auto model = load_translator(o->model);
    const RecordOptions what = record_what(o->what);
    if (what.relevance && model->config.arch != "transformer")   // the model file cannot give it: exit 2
      throw InputError(o->model, "--record relevance needs a transformer translator; this model is " + model->name());
    if ((what.norms || what.mixing) && model->config.arch != "transformer")   // the model file cannot give them: exit 2
      throw InputError(o->model, std::string("--record ") + (what.mixing ? "mixing" : "norms") +
                                     " needs a transformer translator; this model is " + model->name());
    std::vector<AttentionRecord> recs;
    if (!o->text.empty()) {
      auto toks = tokenize_for(model->config, o->text);
      if (toks.empty()) throw UsageError("--text has no tokens");
      auto src = model->encode_source(toks);
      auto hyp = o->beam > 1 ? beam_decode(*model, src, {.width = o->beam}) : greedy_decode(*model, {src})[0];
      auto rec = record_translation(*model, src, hyp, &toks, nullptr, what);
      rec.metadata["input_text"] = o->text;
      recs.push_back(std::move(rec));
    } else {
      auto corpus = load_data(o->data, SyntheticSplit::Test, model->config.tokenizer,
                              model->config.pretokenized || o->data.pretokenized);
      auto data = encode_corpus(*model, corpus);
      for (int i : parse_pair_selection(o->from, data.size())) {
        if (i < 0 || i >= static_cast<int>(data.size()))
          throw UsageError(fmt::format("--from-corpus {}: the corpus has {} pairs", i, data.size()));
        auto rec = record_translation(*model, data[i].src, data[i].tgt, &corpus.pairs[i].source, &corpus.pairs[i].target,
                                      what);
        auto hyp = greedy_decode(*model, {data[i].src})[0];
        rec.metadata["hypothesis"] = join_tokens(model->tgt_vocab.decode(hyp));
        rec.metadata["corpus_index"] = std::to_string(i);
        if (corpus.pairs[i].gold) rec.metadata["gold"] = to_pharaoh(*corpus.pairs[i].gold);
        recs.push_back(std::move(rec));
      }
    }
    if (!fs::path(o->out).parent_path().empty()) fs::create_directories(fs::path(o->out).parent_path());
    save_records(o->out, recs);
    for (const auto& r : recs)
      fmt::print("{} -> {}\n", r.metadata.at("source_text"), r.metadata.at("target_text"));
    fmt::print("saved {} ({} record(s), model {}, attention {})\n", o->out, recs.size(), model->name(), model->attention_kind());
  });
}

}  // namespace attnviz::cli

namespace attnviz::cli {
void add_corpus_translate(CLI::App& p) {
  struct Opts {
    int count = 1000;
    std::uint64_t seed = 1;
    std::string split = "all", out = "-";
  };
  auto o = std::make_shared<Opts>();
  auto* sub = p.add_subcommand("translate", "write the built-in parallel corpus (with gold alignments) as TSV");
  sub->add_option("--synthetic", o->count, "number of pairs")->check(positive_number());
  sub->add_option("--seed", o->seed, "generator seed");
  sub->add_option("--split", o->split, "all | train | test (test: the sentences training never sees)")
      ->check(CLI::IsMember({"all", "train", "test"}));
  sub->add_option("-o,--out", o->out, "output TSV ('-' = standard output)");
  set_example(sub, "attnviz corpus translate --synthetic 1000 -o corpus.tsv");
  sub->callback([o] {
    auto split = o->split == "train" ? SyntheticSplit::Train : o->split == "test" ? SyntheticSplit::Test : SyntheticSplit::All;
    auto c = generate_synthetic({.count = o->count, .seed = o->seed, .split = split});
    if (o->out == "-") {
      for (const auto& pr : c.pairs)
        fmt::print("{}\t{}\t{}\n", join_tokens(pr.source), join_tokens(pr.target), to_pharaoh(*pr.gold));
    } else {
      write_corpus_tsv(o->out, c);
      fmt::print(stderr, "wrote {} pairs to {}\n", c.size(), o->out);
    }
  });
}
}  // namespace attnviz::cli
