// `attnviz align INPUT`: word alignments (Pharaoh lines) from any attention record or importable
// file, optionally scored against gold; `attnviz align --score PRED --gold GOLD` scores alignment
// files alone (e.g. from fast_align, awesome-align or SimAlign).
#include "cli/commands.hpp"
#include "cli/input_options.hpp"

#include <attnviz/analysis/alignment.hpp>
#include <attnviz/record/subwords.hpp>
#include <attnviz/analysis/statistical_aligner.hpp>
#include <attnviz/io/atomic_file.hpp>
#include <attnviz/data/corpus.hpp>
#include <attnviz/error.hpp>
#include <attnviz/record/import.hpp>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <memory>

namespace attnviz::cli {

namespace {

// Records of attnviz's own BPE models (metadata "subwords" = "bpe@@") hold pieces, but a gold
// alignment counts words: such records are scored on their word-level view (as --merge-subwords).
void per_word_for_gold(std::vector<AttentionRecord>& recs, const std::string& input) {
  int merged = 0;
  for (auto& r : recs) {
    auto it = r.metadata.find("subwords");
    if (it != r.metadata.end() && it->second == "bpe@@" && !r.metadata.count("merged_subwords")) {
      merge_subwords(r);
      ++merged;
    }
  }
  if (merged)
    fmt::print(stderr, "note: {}: {} record(s) of a BPE model scored per word (pieces merged, as --merge-subwords)\n",
               input, merged);
}

void print_score(const AlignmentScore& s, bool json, const std::string& what) {
  if (json) {
    nlohmann::json j = {{"what", what},         {"precision", s.precision()}, {"recall", s.recall()},
                        {"aer", s.aer()},       {"predicted", s.predicted},   {"sure", s.sure},
                        {"a_and_s", s.a_and_s}, {"a_and_p", s.a_and_p}};
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("precision {:.4f}  recall {:.4f}  AER {:.4f}   (|A|={} |S|={} |A∩S|={} |A∩P|={}; {})\n", s.precision(),
             s.recall(), s.aer(), s.predicted, s.sure, s.a_and_s, s.a_and_p, what);
}

nlohmann::json score_json(const AlignmentScore& s) {
  return {{"aer", s.aer()}, {"precision", s.precision()}, {"recall", s.recall()}, {"predicted", s.predicted},
          {"sure", s.sure}, {"a_and_s", s.a_and_s}, {"a_and_p", s.a_and_p}};
}

// --rank-heads: every head by AER, then each tensor's mean over heads and the average head.
void print_ranking(const HeadRanking& r, bool json, const std::string& what) {
  if (json) {
    nlohmann::json j = {{"what", what}, {"mean_head_aer", r.mean_head_aer}};
    for (const auto& h : r.heads) {
      auto e = score_json(h.score);
      e["tensor"] = h.tensor, e["layer"] = h.layer, e["head"] = h.head;
      j["heads"].push_back(e);
    }
    for (const auto& h : r.means) {
      auto e = score_json(h.score);
      e["tensor"] = h.tensor, e["layer"] = h.layer;
      j["head_means"].push_back(e);
    }
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("alignment heads by AER ({})\n", what);
  fmt::print("{:>4}  {:<28} {:>5} {:>4}  {:>7} {:>9} {:>7}\n", "rank", "tensor", "layer", "head", "AER", "precision", "recall");
  for (size_t i = 0; i < r.heads.size(); ++i) {
    const auto& h = r.heads[i];
    fmt::print("{:>4}  {:<28} {:>5} {:>4}  {:>7.4f} {:>9.4f} {:>7.4f}\n", i + 1, h.tensor, h.layer, h.head, h.score.aer(),
               h.score.precision(), h.score.recall());
  }
  for (const auto& h : r.means)
    fmt::print("      {:<28} {:>5} mean  {:>7.4f} {:>9.4f} {:>7.4f}   (weights averaged over heads)\n", h.tensor, h.layer,
               h.score.aer(), h.score.precision(), h.score.recall());
  fmt::print("average AER of the {} heads: {:.4f}\n", r.heads.size(), r.mean_head_aer);
}

}  // namespace

void add_align(CLI::App& app) {
  struct Opts {
    std::string input, reverse, gold, score, out, text, method = "argmax", tensor;
    ImportOptions imp;
    AlignOptions align;
    int head = -1;
    std::string train_corpus, eval_corpus, columns, symmetrize = "grow-diag-final-and", combine;
    StatAlignOptions stat;
    bool pretokenized = false, lowercase = false;
    bool keep_special = false, rank_heads = false, one_indexed = false, gold_one = false, pred_one = false, json = false, all_samples = false;
    bool gold_all_sure = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("align", "word alignments (Pharaoh i-j) from attention, and precision/recall/AER against gold");
  sub->add_option("INPUT", o->input, "record or importable attention file (rows = target, columns = source)");
  sub->add_option("--reverse", o->reverse,
                  "records of a model of the opposite direction on the same pairs (rows = INPUT's source words): "
                  "the two are combined (--combine) and their two directions' links by --symmetrize (default "
                  "grow-diag-final-and); subword records are merged into words first");
  sub->add_option("--combine", o->combine,
                  "--reverse: product (default: one matrix, INPUT's attention times REV's transposed, whose rows and "
                  "columns give the two directions' links) | none (each record's own links)");
  sub->add_option("--method", o->method, "argmax | itermax | intersect | threshold")
      ->check(CLI::IsMember({"argmax", "itermax", "intersect", "threshold"}));
  sub->add_option("--threshold", o->align.threshold, "threshold method: minimum weight, 0..1")->check(finite_in(0.0, 1.0));
  sub->add_option("--tensor", o->tensor, "tensor to align (default: the last layer's cross-attention)");
  sub->add_option("--head", o->head, "head to use (default: mean over heads)")->check(non_negative_number());
  sub->add_flag("--keep-special", o->keep_special, "keep <eos>/<bos>/[CLS]/... rows and columns (they are dropped by default)");
  sub->add_flag("--rank-heads", o->rank_heads, "score every layer x head (and each layer's mean over heads) against --gold "
                                              "over all samples and print them by AER; --tensor filters tensor names");
  sub->add_flag("--all-samples", o->all_samples, "one line per sample of a multi-sample file (default: --sample only)");
  sub->add_option("--text", o->text, "'source ||| target' lines (split on spaces) labelling the axes, one per sample");
  sub->add_option("--gold", o->gold, "gold Pharaoh file (i-j sure, i?j or ipj possible), one line per sample");
  sub->add_option("--score", o->score, "score this Pharaoh file against --gold (no INPUT needed)");
  sub->add_flag("--one-indexed", o->one_indexed, "every Pharaoh file (gold, --score, output) uses 1-based indices");
  sub->add_flag("--gold-one-indexed", o->gold_one, "the --gold file is 1-based (awesome-align's and fast_align's gold)");
  sub->add_flag("--pred-one-indexed", o->pred_one, "the --score file and the output are 1-based");
  sub->add_flag("--gold-all-sure", o->gold_all_sure,
                "count every gold link (--gold, or a corpus's gold column) as sure, possible ones too (awesome-align's "
                "tools/aer.py --allSure)");
  sub->add_option("-o,--out", o->out, "write the Pharaoh lines here instead of standard output");
  sub->add_flag("--json", o->json, "print scores as JSON");
  add_import_options(sub, o->imp);
  auto* stat = sub->add_option_group("statistical aligner", "a baseline without attention (no INPUT needed)");
  stat->add_option("--train-ibm1", o->train_corpus,
                   "train IBM Model 1 (with fast_align's diagonal prior unless --diagonal-tension 0) on this corpus "
                   "(TSV or 'source ||| target'), both directions, symmetrize, and write its Pharaoh alignments");
  stat->add_option("--eval-corpus", o->eval_corpus,
                   "also train on these pairs (TSV read with the same columns, plus the next one as gold), then write and score "
                   "only their alignments (the usual set-up: test sentences join the unsupervised training)");
  stat->add_option("--iterations", o->stat.iterations, "EM iterations per direction")->check(CLI::Range(0, 1000));
  stat->add_option("--diagonal-tension", o->stat.diagonal_tension,
                   "fast_align's lambda: how strongly links prefer the diagonal (0 = plain IBM Model 1)")
      ->check(finite_in(0.0, 1000.0));
  stat->add_option("--null-probability", o->stat.null_probability, "p0, the prior of aligning to nothing")
      ->check(finite_in(1e-6, 0.999999));
  sub->add_option("--symmetrize", o->symmetrize,
                  "how --train-ibm1's two directions, or INPUT and --reverse, are combined: forward | reverse | "
                  "intersect | union | grow-diag | grow-diag-final | grow-diag-final-and");
  stat->add_option("--columns", o->columns, "TSV columns source,target[,gold] (1-based; default 1,2,3)");
  stat->add_flag("--pretokenized", o->pretokenized, "the corpus is tokenized: split on spaces only");
  stat->add_flag("--lowercase", o->lowercase, "lowercase the words before counting them");
  set_example(sub, "attnviz align samples/alignment_6x7.safetensors --gold samples/alignment_6x7.gold\n"
                   "  attnviz align rec.safetensors --gold rec.gold --rank-heads\n"
                   "  attnviz align --score enfr.awesome-align.out --gold enfr.gold --gold-one-indexed\n"
                   "  attnviz align --train-ibm1 pairs.tsv -o ibm1.talp");
  sub->callback([o] {
    const PharaohOptions ph{.one_indexed = o->one_indexed || o->pred_one,
                            .flag = o->one_indexed ? "--one-indexed" : "--pred-one-indexed"};
    const PharaohOptions gph{.one_indexed = o->one_indexed || o->gold_one,
                             .flag = o->one_indexed ? "--one-indexed" : "--gold-one-indexed",
                             .all_sure = o->gold_all_sure};
    auto read_checked = [](const std::string& path, const PharaohOptions& opt) {
      auto all = read_pharaoh_file(path, opt);
      for (const auto& h : pharaoh_index_hints(all, path, opt)) fmt::print(stderr, "warning: {}\n", h);
      return all;
    };
    auto read_gold = [&] { return read_checked(o->gold, gph); };
    if (!o->train_corpus.empty()) {
      if (!o->input.empty() || !o->score.empty()) throw UsageError("--train-ibm1 takes no INPUT or --score");
      CorpusOptions co;
      if (!o->columns.empty()) parse_columns(o->columns, co);
      co.pretokenized = o->pretokenized;
      co.tokenizer.lowercase = o->lowercase;
      co.one_indexed = gph.one_indexed;
      co.gold_all_sure = o->gold_all_sure;
      ParallelCorpus corpus = read_corpus(o->train_corpus, co);
      for (const auto& n : corpus.notes) fmt::print(stderr, "note: {}\n", n);
      o->stat.symmetrize = parse_symmetrize(o->symmetrize);
      o->stat.corpus_path = o->train_corpus;
      std::vector<SentencePair> all = corpus.pairs;
      std::string scored_path = o->train_corpus;
      if (!o->eval_corpus.empty()) {
        CorpusOptions eco = co;   // the same columns, but the gold column is read when present
        if (eco.gold_column == 0) eco.gold_column = std::max(eco.source_column, eco.target_column) + 1, eco.gold_optional = true;
        corpus = read_corpus(o->eval_corpus, eco);   // what is written and scored from here on
        for (const auto& n : corpus.notes) fmt::print(stderr, "note: {}\n", n);
        all.insert(all.end(), corpus.pairs.begin(), corpus.pairs.end());
        scored_path = o->eval_corpus;
      }
      std::vector<Alignment> pred = train_and_align(all, o->stat);
      pred.erase(pred.begin(), pred.end() - static_cast<std::ptrdiff_t>(corpus.pairs.size()));
      std::string lines;
      for (const auto& a : pred) lines += format_pharaoh(a, ph) + "\n";
      if (!o->out.empty()) write_file_atomically(o->out, lines);
      else if (!o->json) fmt::print("{}", lines);
      std::vector<Alignment> gold;
      if (!o->gold.empty()) gold = read_gold();
      else if (corpus.has_gold())
        for (const auto& p : corpus.pairs) gold.push_back(*p.gold);
      const std::string what = fmt::format("IBM Model 1{}, {} iterations, {}, {} pairs of {}, trained on {} pairs",
                                           o->stat.diagonal_tension > 0 ? fmt::format(" + diagonal prior (lambda {:g}, p0 {:g})",
                                                                                       o->stat.diagonal_tension, o->stat.null_probability)
                                                                        : "",
                                           o->stat.iterations, symmetrize_name(o->stat.symmetrize), pred.size(),
                                           scored_path, all.size());
      if (!gold.empty()) {
        if (gold.size() != pred.size())
          throw InputError(o->gold, fmt::format("{} gold line(s) for {} corpus pair(s)", gold.size(), pred.size()));
        std::vector<PairSize> dims;
        for (const auto& p : corpus.pairs) dims.push_back({static_cast<int>(p.source.size()), static_cast<int>(p.target.size())});
        check_alignments_fit(gold, dims, o->gold.empty() ? scored_path : o->gold, gph);
        // With -o the scores go to standard output; without, after the alignments, to standard error.
        if (o->out.empty() && !o->json) {
          const AlignmentScore sc = score_alignments(pred, gold);
          fmt::print(stderr, "precision {:.4f}  recall {:.4f}  AER {:.4f}   ({})\n", sc.precision(), sc.recall(), sc.aer(), what);
        } else {
          print_score(score_alignments(pred, gold), o->json, what);
        }
      } else if (!o->out.empty()) {
        fmt::print("wrote {} alignment(s) to {} ({})\n", pred.size(), o->out, what);
      }
      return;
    }
    if (!o->score.empty()) {
      if (o->gold.empty()) throw UsageError("--score needs --gold");
      if (!o->input.empty()) throw UsageError("give either INPUT or --score, not both");
      auto pred = read_checked(o->score, ph);
      auto gold = read_gold();
      if (pred.size() != gold.size())
        throw InputError(o->score, fmt::format("{} lines, but the gold file {} has {}", pred.size(), o->gold, gold.size()));
      print_score(score_alignments(pred, gold), o->json, fmt::format("{} sentence(s)", pred.size()));
      return;
    }
    if (o->input.empty()) throw UsageError("give an INPUT attention file, or --score PRED --gold GOLD");
    o->align.method = parse_align_method(o->method);
    if (!o->reverse.empty() && o->rank_heads) throw UsageError("--rank-heads ranks the heads of one INPUT: drop --reverse");
    if (o->reverse.empty() && !o->combine.empty()) throw UsageError("--combine combines INPUT with --reverse REV: give --reverse");
    const Symmetrize how = parse_symmetrize(o->symmetrize);
    const Combine combine = parse_combine(o->combine.empty() ? "product" : o->combine);
    if (o->rank_heads) {
      if (o->gold.empty()) throw UsageError("--rank-heads needs --gold");
      auto recs = import_records(o->input, o->imp);
      per_word_for_gold(recs, o->input);
      auto gold = read_gold();
      RankHeadsOptions ro{.tensors = o->tensor, .align = o->align, .keep_special = o->keep_special,
                          .input_path = o->input, .gold_path = o->gold, .gold_format = gph};
      print_ranking(rank_heads(recs, gold, ro), o->json,
                    fmt::format("{}, {} sample(s), {}", align_method_name(o->align.method), recs.size(), o->input));
      return;
    }
    std::vector<AttentionRecord> recs;
    if (o->all_samples) recs = import_records(o->input, o->imp);
    else recs.push_back(import_record(o->input, o->imp));
    std::vector<AttentionRecord> rev;
    if (!o->reverse.empty()) {
      if (o->all_samples) rev = import_records(o->reverse, o->imp);
      else rev.push_back(import_record(o->reverse, o->imp));
      if (rev.size() != recs.size())
        throw InputError(o->reverse, fmt::format("{} sample(s), but {} has {}", rev.size(), o->input, recs.size()));
      // the two models' pieces need not agree: both directions are combined word by word
      for (auto* rs : {&recs, &rev})
        for (auto& r : *rs)
          if (auto it = r.metadata.find("subwords"); it != r.metadata.end() && !r.metadata.count("merged_subwords"))
            merge_subwords(r);
    }
    if (!o->gold.empty()) per_word_for_gold(recs, o->input);
    std::vector<SentencePair> text;
    if (!o->text.empty()) {
      text = read_bitext(o->text);
      if (text.size() < recs.size())
        throw InputError(o->text, fmt::format("{} lines for {} sample(s)", text.size(), recs.size()));
    }
    std::vector<Alignment> pred;
    std::vector<PairSize> dims;   // source and target size of each aligned matrix
    std::string lines;
    for (size_t k = 0; k < recs.size(); ++k) {
      auto& r = recs[k];
      auto m = alignment_matrix(r, {.tensor = o->tensor, .head = o->head, .keep_special = o->keep_special});
      if (!text.empty()) {
        const auto& p = text[o->all_samples ? k : std::min<size_t>(k + o->imp.sample, text.size() - 1)];
        if (static_cast<int>(p.source.size()) != m.weights.cols() || static_cast<int>(p.target.size()) != m.weights.rows())
          throw InputError(o->text, fmt::format("pair {} has {} source and {} target tokens, but the attention is [{} target, {} source]",
                                                k, p.source.size(), p.target.size(), m.weights.rows(), m.weights.cols()));
      }
      if (rev.empty()) {
        pred.push_back(extract_alignment(m.weights, o->align));
      } else {
        auto rm = alignment_matrix(rev[k], {.tensor = o->tensor, .head = o->head, .keep_special = o->keep_special});
        if (rm.weights.rows() != m.weights.cols() || rm.weights.cols() != m.weights.rows())
          throw InputError(o->reverse, fmt::format("sample {}: attention [{} target, {} source], but {} has [{}, {}]: the "
                                                   "reverse model's must be the transpose (same pair, other direction)",
                                                   k, rm.weights.rows(), rm.weights.cols(), o->input, m.weights.rows(),
                                                   m.weights.cols()));
        pred.push_back(symmetrize_attention(m.weights, rm.weights, o->align, how, combine));
      }
      if (const int bad = nan_rows(m.weights))
        fmt::print(stderr, "warning: {}{}: {} of {} target row(s) of '{}' hold NaN weights and get no links\n", o->input,
                   recs.size() > 1 ? fmt::format(" sample {}", k) : "", bad, m.weights.rows(), m.tensor);
      dims.push_back({static_cast<int>(m.weights.cols()), static_cast<int>(m.weights.rows())});
      lines += format_pharaoh(pred.back(), ph) + "\n";
    }
    if (!o->out.empty()) write_file_atomically(o->out, lines);
    else if (!(o->json && !o->gold.empty())) fmt::print("{}", lines);
    if (!o->gold.empty()) {
      auto gold = read_gold();
      // A single sample picked with --sample is scored against that line of a multi-line gold file.
      if (!o->all_samples && gold.size() > 1 && static_cast<size_t>(o->imp.sample) < gold.size())
        gold = {gold[o->imp.sample]};
      if (gold.size() != pred.size())
        throw InputError(o->gold, fmt::format("{} gold line(s) for {} aligned sample(s)", gold.size(), pred.size()));
      check_alignments_fit(gold, dims, o->gold, gph);
      print_score(score_alignments(pred, gold), o->json,
                  rev.empty() ? fmt::format("{}, {}", align_method_name(o->align.method), o->input)
                              : fmt::format("{}, {} and reverse {}, combined: {}, {}", align_method_name(o->align.method),
                                            o->input, o->reverse, combine_name(combine), symmetrize_name(how)));
    }
  });
}

}  // namespace attnviz::cli
