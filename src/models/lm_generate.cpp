// Text generation with a KV cache, and the AttentionRecord of every layer x head over prompt +
// generated tokens (the record's memory is checked before anything is computed).
#include <attnviz/error.hpp>
#include <attnviz/models/lm.hpp>
#include <attnviz/models/lm_relevance.hpp>
#include <attnviz/text/lm_tokenizer.hpp>

#include "models/attention_extras.hpp"

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>

namespace attnviz::models {

namespace {

// Copies each step's weights [1, H, Nq, Nk] into per-layer record tensors [H, Tmax, Tmax] that are
// allocated once; leaves the step's buffer in place so the model reuses it (no per-token allocation).
class RecordSink : public AttentionSink {
 public:
  RecordSink(const LmConfig& cfg, int tmax, bool norms, bool mixing) : tmax_(tmax), norms_(norms), mixing_(mixing) {
    for (int l = 0; l < cfg.layers; ++l) {
      const std::string name = "decoder.layer" + std::to_string(l) + ".self";
      tensors.emplace_back(name, cfg.heads, tmax, tmax, "tokens", "tokens");
      if (norms) {
        tensors.emplace_back(name + ".norm", cfg.heads, tmax, tmax, "tokens", "tokens");
        tensors.emplace_back(name + ".norm_sum", 1, tmax, tmax, "tokens", "tokens");
      }
      if (mixing) tensors.emplace_back(name + ".mixing", 1, tmax, tmax, "tokens", "tokens");
    }
    for (size_t i = 0; i < tensors.size(); ++i) index_[tensors[i].name] = static_cast<int>(i);
  }
  bool wants_norms() const override { return norms_; }
  bool wants_mixing() const override { return mixing_; }
  void weights(const std::string& name, nn::AttentionWeights&& w, int q0) override {
    AttentionTensor& t = tensors.at(index_.at(name));
    if (q0 + w.Nq > tmax_ || w.Nk > tmax_) throw std::logic_error("RecordSink: step beyond the record");
    for (int h = 0; h < w.H; ++h)
      for (int i = 0; i < w.Nq; ++i)
        std::memcpy(&t.at(h, q0 + i, 0), w.at(0, h) + static_cast<size_t>(i) * w.Nk, sizeof(float) * w.Nk);
  }
  std::vector<AttentionTensor> tensors;

 private:
  int tmax_;
  bool norms_, mixing_;
  std::map<std::string, int> index_;
};

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

GenerateResult generate(const LmModel& model, const GenerateOptions& opt, const LmTokenizer* tok) {
  const LmConfig& cfg = model.config();
  if (opt.prompt.empty()) throw UsageError("generate: the prompt has no tokens (and the model no BOS to start from)");
  if (opt.steps < 0) throw UsageError("--steps must be >= 0");
  const int P = static_cast<int>(opt.prompt.size());
  const int tmax = P + opt.steps;
  // The last generated token runs through the model only when the record needs its row (or the
  // caller counts decode steps: forward_last).
  const bool last_too = opt.record || opt.forward_last;
  const int capacity = last_too || opt.steps == 0 ? tmax : tmax - 1;
  if (capacity > cfg.context)
    throw UsageError(fmt::format("{} prompt tokens + {} steps exceed the model's context of {} positions", P,
                                 opt.steps, cfg.context));
  if (opt.record) check_record_size(model.config(), tmax, opt.max_record_mib, opt.norms, opt.mixing);
  if (opt.relevance && !opt.record) throw UsageError("relevance needs a record (-o)");
  if (opt.relevance && (opt.steps == 0 || opt.explain_step < 0 || opt.explain_step > opt.steps))
    throw UsageError(fmt::format("relevance explains generated tokens: needs --steps >= 1 and --explain-step in "
                                 "0..{} (0 = every one), not {}", opt.steps, opt.explain_step));
  for (int id : opt.prompt)
    if (id < 0 || id >= cfg.vocab) throw UsageError(fmt::format("prompt token id {} outside the vocabulary of {}", id, cfg.vocab));

  GenerateResult res;
  res.prompt_tokens = P;
  res.ids = opt.prompt;
  res.ids.reserve(tmax);
  std::unique_ptr<RecordSink> sink = opt.record ? std::make_unique<RecordSink>(cfg, tmax, opt.norms, opt.mixing) : nullptr;
  LmCache cache = model.new_cache(capacity);
  nn::Rng rng(opt.seed);
  std::vector<std::pair<float, int>> scratch;
  scratch.reserve(cfg.vocab);
  LmForwardOptions fo;
  fo.threads = opt.threads;

  auto t0 = std::chrono::steady_clock::now();
  const Mat* logits = &model.forward(opt.prompt, cache, sink.get(), fo);
  res.prefill_seconds = since(t0);
  std::vector<int> one(1);
  t0 = std::chrono::steady_clock::now();
  for (int s = 0; s < opt.steps; ++s) {
    const int next = sample_token(logits->data(), cfg.vocab, opt.sampler, rng, scratch);
    if (std::find(opt.stop_ids.begin(), opt.stop_ids.end(), next) != opt.stop_ids.end()) break;
    const int prev = res.ids.back();
    res.ids.push_back(next);
    if (opt.on_token) opt.on_token(prev, next);
    // The last token needs a forward pass only for its row of the record.
    if (s + 1 < opt.steps || last_too) {
      one[0] = next;
      logits = &model.forward(one, cache, sink.get(), fo);
      ++res.decoded;
    }
  }
  res.decode_seconds = since(t0);

  if (sink) {
    const int T = static_cast<int>(res.ids.size());
    AttentionRecord r;
    for (AttentionTensor& t : sink->tensors) {
      if (T == tmax) {
        r.tensors.push_back(std::move(t));
        continue;
      }
      AttentionTensor c(t.name, t.heads, T, T, "tokens", "tokens");   // generation stopped early: crop
      for (int h = 0; h < t.heads; ++h)
        for (int i = 0; i < T; ++i) std::memcpy(&c.at(h, i, 0), &t.at(h, i, 0), sizeof(float) * T);
      r.tensors.push_back(std::move(c));
    }
    // The per-step rows are those of one causal pass over all T tokens (a row sees only keys <= its
    // position), so the rollout over the layers is that of the whole sequence.
    if (opt.mixing) add_mixing_rollout(r.tensors, "decoder");
    std::vector<std::string> names;
    for (int id : res.ids) names.push_back(tok && id < tok->size() ? tok->display(id) : std::to_string(id));
    r.tokens["tokens"] = std::move(names);
    r.metadata["model"] = cfg.name;
    r.metadata["architecture"] = lm_arch_name(cfg.arch);
    r.metadata["attention"] = "scaled-dot";
    r.metadata["causal"] = "true";
    r.metadata["token_ids"] = nlohmann::json(res.ids).dump();
    r.metadata["prompt_tokens"] = std::to_string(P);
    r.metadata["generated_tokens"] = std::to_string(T - P);
    r.metadata["temperature"] = fmt::format("{}", opt.sampler.temperature);
    if (opt.sampler.temperature > 0) r.metadata["seed"] = std::to_string(opt.seed);
    if (opt.relevance) {
      t0 = std::chrono::steady_clock::now();
      record_lm_relevance(model, res.ids, P, opt.explain_step, opt.threads, r);
      res.relevance_seconds = since(t0);
    }
    res.record = std::move(r);
  }
  return res;
}

}  // namespace attnviz::models
