// What every translator shares: construction by config, model files, corpus encoding, the
// training epoch, greedy and beam decoding, recording with tokens, and evaluation.
#include <attnviz/io/atomic_file.hpp>
#include <attnviz/error.hpp>
#include <attnviz/models/model_file.hpp>
#include "models/attention_extras.hpp"
#include <attnviz/models/translator.hpp>
#include <attnviz/io/safetensors.hpp>
#include <attnviz/record/subwords.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <cstring>

#include <nlohmann/json.hpp>

namespace attnviz::models {

std::unique_ptr<Translator> make_rnn_translator(const TranslatorConfig& c, Vocabulary s, Vocabulary t);
std::unique_ptr<Translator> make_transformer_translator(const TranslatorConfig& c, Vocabulary s, Vocabulary t);

std::string Translator::attention_kind() const {
  return config.arch == "transformer" ? "scaled-dot" : nn::score_name(config.attention);
}

std::string Translator::name() const {
  if (config.arch == "transformer")
    return "transformer-L" + std::to_string(config.layers) + "-H" + std::to_string(config.heads);
  return std::string("rnn-") + nn::score_name(config.attention);
}

std::unique_ptr<Translator> make_translator(const TranslatorConfig& config, Vocabulary s, Vocabulary t) {
  TranslatorConfig c = config;
  if (c.coverage < 0) c.coverage = c.arch == "rnn" && c.attention == nn::Score::Additive ? kDefaultAdditiveCoverage : 0.f;
  if (c.arch == "transformer") c.coverage = 0.f;
  if (c.arch == "rnn") return make_rnn_translator(c, std::move(s), std::move(t));
  if (c.arch == "transformer") return make_transformer_translator(c, std::move(s), std::move(t));
  throw UsageError("unknown --arch '" + c.arch + "' (expected rnn or transformer)");
}

// ---- config and files ------------------------------------------------------------------------

std::string TranslatorConfig::to_json() const {
  return nlohmann::json{{"arch", arch}, {"attention", nn::score_name(attention)}, {"query", query},
                        {"embed", embed}, {"hidden", hidden}, {"dim", dim}, {"heads", heads},
                        {"layers", layers}, {"ff", ff}, {"max_len", max_len}, {"dropout", dropout},
                        {"coverage", coverage}, {"guide", guide}, {"bpe", bpe}, {"lowercase", tokenizer.lowercase},
                        {"split_punctuation", tokenizer.split_punctuation}, {"pretokenized", pretokenized},
                        {"normalize", normalization_name(tokenizer.normalize)},
                        {"strip_diacritics", tokenizer.strip_diacritics}}
      .dump();
}

TranslatorConfig TranslatorConfig::from_json(const std::string& text, const std::string& path) {
  TranslatorConfig c;
  try {
    auto j = nlohmann::json::parse(text);
    c.arch = j.at("arch").get<std::string>();
    c.attention = nn::parse_score(j.at("attention").get<std::string>());
    c.query = j.at("query").get<std::string>();
    c.embed = j.at("embed").get<int>();
    c.hidden = j.at("hidden").get<int>();
    c.dim = j.at("dim").get<int>();
    c.heads = j.at("heads").get<int>();
    c.layers = j.at("layers").get<int>();
    c.ff = j.at("ff").get<int>();
    c.max_len = j.at("max_len").get<int>();
    c.dropout = j.at("dropout").get<float>();
    c.coverage = j.at("coverage").get<float>();
    c.guide = j.value("guide", 0.f);   // absent in files before guided alignment and BPE
    c.bpe = j.value("bpe", 0);
    c.tokenizer.lowercase = j.at("lowercase").get<bool>();
    c.tokenizer.split_punctuation = j.at("split_punctuation").get<bool>();
    c.pretokenized = j.at("pretokenized").get<bool>();
    // Unicode normalization (issue 14): absent in older model files, which had none.
    c.tokenizer.normalize = parse_normalization(j.value("normalize", std::string("none")));
    c.tokenizer.strip_diacritics = j.value("strip_diacritics", false);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path, std::string("translator config in __metadata__ is not valid: ") + e.what());
  } catch (const UsageError& e) {
    throw InputError(path, std::string("translator config: ") + e.what());
  }
  if (c.arch != "rnn" && c.arch != "transformer") throw InputError(path, "unknown arch '" + c.arch + "'");
  if (c.query != "current" && c.query != "previous") throw InputError(path, "unknown attention query '" + c.query + "'");
  if (c.embed <= 0 || c.hidden <= 0 || c.dim <= 0 || c.heads <= 0 || c.layers <= 0 || c.ff <= 0 || c.max_len <= 0 ||
      c.embed > 4096 || c.hidden > 4096 || c.dim > 4096 || c.layers > 64 || c.ff > 65536 || c.max_len > 100000 ||
      c.dim % c.heads != 0 || !(c.coverage >= 0.f && c.coverage <= 1e6f) ||
      !(c.guide >= 0.f && c.guide <= 1e6f) || c.bpe < 0 || !(c.dropout >= 0.f && c.dropout < 1.f))
    throw InputError(path, "implausible model dimensions in the translator config");
  return c;
}

std::map<std::string, std::string> Translator::file_metadata() const {
  std::map<std::string, std::string> m = {{"src_vocab", src_vocab.to_json()}, {"tgt_vocab", tgt_vocab.to_json()}};
  if (subwords()) m["src_bpe"] = src_bpe.to_json(), m["tgt_bpe"] = tgt_bpe.to_json();
  return m;
}

std::vector<int> Translator::encode_source(const std::vector<std::string>& words) const {
  return src_vocab.encode(src_bpe.apply(words));
}
std::vector<int> Translator::encode_target(const std::vector<std::string>& words) const {
  return tgt_vocab.encode(tgt_bpe.apply(words));
}

AttentionRecord Translator::record(const std::vector<int>& src, const std::vector<int>& tgt, const RecordOptions& what) {
  Example ex{src, tgt, {}};
  AttentionCollector sink(false, what.norms, what.mixing);
  forward({&ex}, &sink);
  AttentionRecord rec;
  // encoder self-attention first, then the decoder's self, then cross (the order records had);
  // each tensor followed by its norm-based versions when recorded.
  for (const std::string kind : {".self", ".cross"})
    for (const std::string side : {"encoder.", "decoder."})
      for (const auto& name : sink.names) {
        if (name.rfind(side, 0) != 0 || name.size() < kind.size() ||
            name.compare(name.size() - kind.size(), std::string::npos, kind) != 0)
          continue;
        const bool cross = kind == ".cross", enc = side == "encoder.";
        for (const std::string suffix : {"", ".norm", ".norm_sum", ".mixing"})
          if (sink.w.count(name + suffix))
            rec.tensors.push_back(sink.w.at(name + suffix).tensor(0, name + suffix,
                                                                  cross ? "target" : enc ? "source" : "target_input",
                                                                  cross || enc ? "source" : "target_input"));
      }
  // Value-zeroing rollouts over each stack's self maps (the decoder's: target tokens only; the
  // cross maps are not rolled out, README "Context mixing").
  if (what.mixing) add_mixing_rollout(rec.tensors, "encoder"), add_mixing_rollout(rec.tensors, "decoder");
  if (what.relevance) {
    auto maps = relevance({&ex});   // [1][4]: kept alive while its tensors are moved out
    for (auto& t : maps.at(0)) rec.tensors.push_back(std::move(t));
  }
  return rec;
}

std::vector<std::vector<AttentionTensor>> Translator::relevance(const std::vector<const Example*>&) {
  throw InputError("", "relevance (Chefer et al. 2021) needs a transformer translator; this model is " + name());
}

void save_translator(const std::filesystem::path& path, const Translator& m,
                     const std::map<std::string, std::string>& extra) {
  save_model(path, m, extra);
}

std::unique_ptr<Translator> load_translator(const std::filesystem::path& path) {
  return load_model_as<Translator>(path, "translator");
}

// The metadata of translate files written by attnviz 0.1 (one key per config field).
TranslatorConfig translator_config_from_legacy(const std::map<std::string, std::string>& meta, const std::string& ps) {
  auto get = [&](const std::string& k) -> const std::string& {
    auto it = meta.find(k);
    if (it == meta.end()) throw InputError(ps, "old translate model file: metadata '" + k + "' missing");
    return it->second;
  };
  auto num = [&](const std::string& k) {
    try {
      return std::stoi(get(k));
    } catch (const std::logic_error&) {
      throw InputError(ps, "metadata '" + k + "' is not a number");
    }
  };
  nlohmann::json j;
  j["arch"] = get("arch");
  j["attention"] = get("attention");
  auto it = meta.find("query");
  j["query"] = it == meta.end() ? "current" : it->second;   // older files: "current"
  float coverage = 0.f;                                      // older files: no penalty
  if (auto c = meta.find("coverage"); c != meta.end()) {
    try {
      coverage = std::stof(c->second);
    } catch (const std::logic_error&) {
      throw InputError(ps, "metadata 'coverage' is not a number");
    }
  }
  j["coverage"] = coverage;
  for (const char* k : {"embed", "hidden", "dim", "heads", "layers", "ff", "max_len"}) j[k] = num(k);
  float dropout = 0.f;
  if (auto d = meta.find("dropout"); d != meta.end()) {
    try {
      dropout = std::stof(d->second);
    } catch (const std::logic_error&) {
      throw InputError(ps, "metadata 'dropout' is not a number");
    }
  }
  j["dropout"] = dropout;
  j["lowercase"] = get("lowercase") == "1";
  j["split_punctuation"] = get("split_punctuation") == "1";
  j["pretokenized"] = get("pretokenized") == "1";
  return TranslatorConfig::from_json(j.dump(), ps);
}

// ---- data ------------------------------------------------------------------------------------

std::vector<std::string> tokenize_for(const TranslatorConfig& c, const std::string& text) {
  return c.pretokenized ? split_spaces(text) : tokenize(text, c.tokenizer);
}

std::vector<Example> encode_corpus(const Translator& m, const ParallelCorpus& corpus) {
  std::vector<Example> out;
  out.reserve(corpus.size());
  for (const auto& p : corpus.pairs) {
    auto low = [&](std::vector<std::string> t) {
      if (m.config.tokenizer.lowercase)
        for (auto& s : t) s = join_tokens(tokenize(s, {.lowercase = true, .split_punctuation = false}));
      return t;
    };
    out.push_back({m.encode_source(low(p.source)), m.encode_target(low(p.target)), {}});
  }
  return out;
}

namespace {
// First piece of each word, and one past the last word's last piece: [words + 1].
std::vector<int> piece_starts(const Bpe& bpe, const std::vector<std::string>& words) {
  std::vector<int> starts = {0};
  for (const auto& w : words) starts.push_back(starts.back() + (bpe.empty() ? 1 : static_cast<int>(bpe.segment(w).size())));
  return starts;
}
}  // namespace

Alignment links_to_pieces(const Translator& m, const SentencePair& words, const Alignment& links) {
  if (!m.subwords()) return links;
  auto low = [&](const std::vector<std::string>& t) {
    std::vector<std::string> out = t;
    if (m.config.tokenizer.lowercase)
      for (auto& x : out) x = join_tokens(tokenize(x, {.lowercase = true, .split_punctuation = false}));
    return out;
  };
  const auto s = piece_starts(m.src_bpe, low(words.source)), t = piece_starts(m.tgt_bpe, low(words.target));
  Alignment out;
  for (const auto& l : links.links) {
    if (l.source < 0 || l.target < 0 || l.source + 1 >= static_cast<int>(s.size()) || l.target + 1 >= static_cast<int>(t.size()))
      continue;
    for (int i = s[l.source]; i < s[l.source + 1]; ++i)
      for (int j = t[l.target]; j < t[l.target + 1]; ++j) out.links.push_back({i, j, l.sure});
  }
  return out;
}

std::vector<Alignment> attach_guide(const Translator& m, const ParallelCorpus& corpus, std::vector<Example>& data,
                                    const StatAlignOptions& opt) {
  if (data.size() != corpus.size()) throw UsageError("attach_guide: the examples are not the corpus' encoding");
  std::vector<Alignment> links = train_and_align(corpus.pairs, opt);
  for (size_t k = 0; k < data.size(); ++k) data[k].guide = links_to_pieces(m, corpus.pairs[k], links[k]);
  return links;
}

// ---- training --------------------------------------------------------------------------------

std::vector<std::vector<const Example*>> make_batches(const std::vector<Example>& data, int batch_size,
                                                      std::uint64_t seed, int epoch) {
  nn::Rng rng = nn::Rng(seed).fork(1000 + static_cast<std::uint64_t>(epoch));
  std::vector<int> order(data.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  rng.shuffle(order);
  // Sort chunks of 20 batches by source length so a batch wastes little on padding.
  const size_t chunk = static_cast<size_t>(batch_size) * 20;
  for (size_t i = 0; i < order.size(); i += chunk) {
    auto e = order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), i + chunk));
    std::stable_sort(order.begin() + static_cast<std::ptrdiff_t>(i), e,
                     [&](int a, int b) { return data[a].src.size() < data[b].src.size(); });
  }
  std::vector<std::vector<const Example*>> batches;
  for (size_t i = 0; i < order.size(); i += batch_size) {
    std::vector<const Example*> b;
    for (size_t k = i; k < std::min(order.size(), i + batch_size); ++k) b.push_back(&data[order[k]]);
    batches.push_back(std::move(b));
  }
  std::vector<int> border(batches.size());
  for (size_t i = 0; i < border.size(); ++i) border[i] = static_cast<int>(i);
  rng.shuffle(border);
  std::vector<std::vector<const Example*>> out;
  for (int i : border) out.push_back(std::move(batches[i]));
  return out;
}

// ---- decoding --------------------------------------------------------------------------------

std::vector<std::vector<int>> greedy_decode(Translator& m, const std::vector<std::vector<int>>& src, int max_len) {
  const int R = static_cast<int>(src.size());
  std::vector<std::vector<int>> out(R);
  if (R == 0) return out;
  auto st = m.start(src);
  std::vector<int> prev(R, Vocabulary::kBos), limit(R);
  std::vector<char> done(R, 0);
  int longest = 0;
  for (int r = 0; r < R; ++r) {
    limit[r] = max_len > 0 ? max_len : 2 * static_cast<int>(src[r].size()) + 10;
    longest = std::max(longest, limit[r]);
  }
  for (int t = 0; t < longest; ++t) {
    Mat lp = m.step(*st, prev);   // [R, V]
    bool all = true;
    for (int r = 0; r < R; ++r) {
      Eigen::Index k;
      lp.row(r).maxCoeff(&k);
      prev[r] = static_cast<int>(k);
      if (done[r]) continue;
      if (k == Vocabulary::kEos || static_cast<int>(out[r].size()) >= limit[r]) done[r] = 1;
      else out[r].push_back(static_cast<int>(k));
      all = all && done[r];
    }
    if (all) break;
  }
  return out;
}

std::vector<int> beam_decode(Translator& m, const std::vector<int>& src, const BeamOptions& opt) {
  const int K = std::max(1, opt.width);
  const int limit = opt.max_len > 0 ? opt.max_len : 2 * static_cast<int>(src.size()) + 10;
  auto st = m.start({src});
  struct Hyp {
    std::vector<int> tokens;
    double logprob = 0;
  };
  std::vector<Hyp> beam = {{}};
  std::vector<int> prev = {Vocabulary::kBos};
  std::vector<std::pair<double, std::vector<int>>> finished;   // (normalized score, tokens)
  auto norm = [&](double lp, size_t len) {
    return opt.length_penalty > 0 ? lp / std::pow(static_cast<double>(len + 1), opt.length_penalty) : lp;
  };
  for (int t = 0; t <= limit && !beam.empty(); ++t) {
    Mat lp = m.step(*st, prev);   // [R, V]
    const int V = static_cast<int>(lp.cols());
    // Candidates: best K per row, then best K overall (ties: lower row, lower token first).
    std::vector<std::tuple<double, int, int>> cand;   // (logprob, row, token)
    for (int r = 0; r < static_cast<int>(beam.size()); ++r) {
      std::vector<int> idx(V);
      for (int v = 0; v < V; ++v) idx[v] = v;
      std::partial_sort(idx.begin(), idx.begin() + std::min(K, V), idx.end(),
                        [&](int a, int b) { return lp(r, a) != lp(r, b) ? lp(r, a) > lp(r, b) : a < b; });
      for (int k = 0; k < std::min(K, V); ++k) cand.emplace_back(beam[r].logprob + lp(r, idx[k]), r, idx[k]);
    }
    std::stable_sort(cand.begin(), cand.end(), [](const auto& a, const auto& b) { return std::get<0>(a) > std::get<0>(b); });
    std::vector<Hyp> next;
    std::vector<int> rows;
    prev.clear();
    for (const auto& [score, r, tok] : cand) {
      if (static_cast<int>(next.size()) >= K) break;
      if (tok == Vocabulary::kEos || t == limit) {
        finished.emplace_back(norm(score, beam[r].tokens.size()), beam[r].tokens);
        if (static_cast<int>(finished.size()) >= K) break;
        continue;
      }
      Hyp h{beam[r].tokens, score};
      h.tokens.push_back(tok);
      next.push_back(std::move(h));
      rows.push_back(r);
      prev.push_back(tok);
    }
    if (static_cast<int>(finished.size()) >= K) break;
    // Stop when no open hypothesis can beat the best finished one (scores only decrease; with a
    // length penalty this is a heuristic bound, as in common implementations).
    if (!finished.empty() && opt.length_penalty <= 0) {
      double best = std::max_element(finished.begin(), finished.end())->first;
      if (next.empty() || next.front().logprob < best) break;
    }
    beam = std::move(next);
    if (!beam.empty()) m.select(*st, rows);
  }
  if (finished.empty()) return beam.empty() ? std::vector<int>{} : beam.front().tokens;
  auto best = std::max_element(finished.begin(), finished.end(),
                               [](const auto& a, const auto& b) { return a.first < b.first; });
  return best->second;
}

// ---- recording -------------------------------------------------------------------------------

namespace {
// Token labels for ids; an <unk> id shows the word it stands for when `words` lines up with `ids`.
std::vector<std::string> labels(const Vocabulary& vocab, const std::vector<int>& ids,
                                const std::vector<std::string>* words, int& unknown) {
  std::vector<std::string> out;
  unknown = 0;
  const bool have_words = words && words->size() == ids.size();
  for (size_t i = 0; i < ids.size(); ++i) {
    const bool unk = ids[i] == Vocabulary::kUnk;
    unknown += unk;
    out.push_back(unk && have_words ? (*words)[i] : vocab.token(ids[i]));
  }
  return out;
}
}  // namespace

AttentionRecord record_translation(Translator& m, const std::vector<int>& src, const std::vector<int>& tgt,
                                   const std::vector<std::string>* source_words,
                                   const std::vector<std::string>* target_words, const RecordOptions& what) {
  AttentionRecord rec = m.record(src, tgt, what);
  int unk_s = 0, unk_t = 0;
  std::vector<std::string> s = labels(m.src_vocab, src, source_words, unk_s);
  std::vector<std::string> t = labels(m.tgt_vocab, tgt, target_words, unk_t);
  std::vector<std::string> tin = {"<bos>"};
  if (source_words) rec.metadata["unknown_source"] = std::to_string(unk_s);
  if (target_words) rec.metadata["unknown_target"] = std::to_string(unk_t);
  tin.insert(tin.end(), t.begin(), t.end());
  rec.metadata["source_text"] = join_tokens(s);
  rec.metadata["target_text"] = join_tokens(t);
  s.push_back("<eos>");
  t.push_back("<eos>");
  rec.tokens["source"] = s;
  rec.tokens["target"] = t;
  if (m.config.arch == "transformer") rec.tokens["target_input"] = tin;
  rec.metadata["model"] = m.name();
  rec.metadata["attention"] = m.attention_kind();
  if (m.subwords()) rec.metadata["subwords"] = "bpe@@";   // --merge-subwords and scoring read words
  rec.metadata["arch"] = m.config.arch;
  if (m.config.arch == "rnn") rec.metadata["query"] = m.config.query;  // which decoder state queried
  return rec;
}

// ---- evaluation ------------------------------------------------------------------------------

TranslationEval evaluate_translator(Translator& m, const ParallelCorpus& corpus, const EvalOptions& opt) {
  auto t0 = std::chrono::steady_clock::now();
  TranslationEval res;
  auto data = encode_corpus(m, corpus);
  res.sentences = static_cast<int>(data.size());
  std::vector<std::vector<std::string>> refs;
  for (size_t i = 0; i < data.size(); i += opt.batch) {
    std::vector<std::vector<int>> src;
    for (size_t k = i; k < std::min(data.size(), i + opt.batch); ++k) src.push_back(data[k].src);
    std::vector<std::vector<int>> hyp;
    if (opt.beam <= 1) hyp = greedy_decode(m, src);
    else
      for (const auto& s : src) hyp.push_back(beam_decode(m, s, {.width = opt.beam, .length_penalty = opt.length_penalty}));
    for (auto& h : hyp) {
      auto pieces = m.tgt_vocab.decode(h);
      // pieces -> words (the references are words)
      if (m.subwords() && !pieces.empty()) {
        pieces = merge_tokens(pieces, word_groups(pieces, "bpe@@"));
        // a hypothesis may stop after a continuing piece: its mark goes too
        if (std::string& last = pieces.back(); last.size() > 2 && last.compare(last.size() - 2, 2, "@@") == 0)
          last.resize(last.size() - 2);
      }
      res.hypotheses.push_back(std::move(pieces));
    }
  }
  for (size_t i = 0; i < data.size(); ++i) {
    // references as the model sees them (lowercased when the model lowercases; unknown words kept)
    std::vector<std::string> ref = corpus.pairs[i].target;
    if (m.config.tokenizer.lowercase)
      for (auto& s : ref) s = join_tokens(tokenize(s, {.lowercase = true, .split_punctuation = false}));
    res.exact += res.hypotheses[i] == ref;
    refs.push_back(std::move(ref));
  }
  res.bleu = corpus_bleu(res.hypotheses, refs);
  if (corpus.has_gold()) {
    std::vector<std::vector<Alignment>> pred;   // [layer][sentence]
    std::vector<Alignment> gold;
    std::vector<Example> rdata;                 // the pairs swapped, for the reverse model
    if (opt.reverse) {
      ParallelCorpus swapped;
      for (const auto& p : corpus.pairs) swapped.pairs.push_back({p.target, p.source, {}});
      rdata = encode_corpus(*opt.reverse, swapped);
    }
    // The maps scored, in this order: each layer's cross-attention weights, each layer's value-zeroing
    // cross map (".cross.mixing"), the relevance maps.
    auto cross_tensors = [](const AttentionRecord& rec) {
      std::vector<std::string> weights, mixing, relevance;
      for (const auto& t : rec.tensors) {
        const std::string kind = parse_tensor_name(t.name).kind;
        if (kind == "cross")
          weights.push_back(t.name);
        else if (kind == "cross.mixing")
          mixing.push_back(t.name);
        else if (t.name == "decoder.relevance_cross" || t.name == "decoder.lrp_relevance_cross")
          relevance.push_back(t.name);
      }
      weights.insert(weights.end(), mixing.begin(), mixing.end());
      weights.insert(weights.end(), relevance.begin(), relevance.end());
      return weights;
    };
    if (opt.mixing && m.config.arch != "transformer")
      throw InputError("", "value-zeroing cross mixing maps need a transformer translator; this model is " + m.name());
    RecordOptions what;
    what.relevance = opt.relevance;
    what.mixing = opt.mixing;
    for (size_t i = 0; i < data.size(); ++i) {
      AttentionRecord rec = record_translation(m, data[i].src, data[i].tgt, nullptr, nullptr, what);
      if (m.subwords()) merge_subwords(rec);   // gold links count words: score the word-level view
      const std::vector<std::string> cross = cross_tensors(rec);
      AttentionRecord rrec;
      std::vector<std::string> rcross;
      if (opt.reverse) {
        rrec = record_translation(*opt.reverse, rdata[i].src, rdata[i].tgt);
        if (opt.reverse->subwords()) merge_subwords(rrec);
        rcross = cross_tensors(rrec);
        if (rcross.empty()) throw std::invalid_argument("evaluate_translator: the reverse model recorded no cross-attention");
      }
      if (pred.empty()) {
        pred.resize(cross.size());
        for (const auto& t : cross) res.alignment.push_back({t, {}});
      }
      for (size_t l = 0; l < cross.size(); ++l) {
        auto am = alignment_matrix(rec, {.tensor = cross[l]});
        if (!opt.reverse) {
          pred[l].push_back(extract_alignment(am.weights, opt.align));
          continue;
        }
        auto rm = alignment_matrix(rrec, {.tensor = rcross[std::min(l, rcross.size() - 1)]});
        pred[l].push_back(symmetrize_attention(am.weights, rm.weights, opt.align, opt.symmetrize, opt.combine));
      }
      gold.push_back(*corpus.pairs[i].gold);
    }
    for (size_t l = 0; l < pred.size(); ++l) res.alignment[l].score = score_alignments(pred[l], gold);
  }
  res.set("exact_match", res.sentences ? static_cast<double>(res.exact) / res.sentences : 0.0);
  res.set("bleu", res.bleu.bleu);
  for (const auto& a : res.alignment) {
    res.set("aer." + a.tensor, a.score.aer());
    res.set("precision." + a.tensor, a.score.precision());
    res.set("recall." + a.tensor, a.score.recall());
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace attnviz::models
