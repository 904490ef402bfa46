// `attnviz generate --model M`: run a pretrained decoder LM (GGUF llama/gpt2 or minGPT JSON), print
// the text on stdout (notes on stderr) and, with -o, record every layer x head of every token.
#include "cli/commands.hpp"
#include "cli/record_options.hpp"

#include <attnviz/error.hpp>
#include <attnviz/models/lm.hpp>
#include <attnviz/record/record.hpp>
#include <attnviz/text/lm_tokenizer.hpp>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <sstream>

namespace attnviz::cli {

namespace {

struct GenerateCliOptions {
  std::string model;
  std::string prompt;
  int steps = 64;
  float temperature = 0.8f;
  int top_k = 40;
  std::uint64_t seed = 1;
  std::string out;
  double max_record_mib = 2048;
  int heads = 0;
  std::vector<std::string> what;   // --record
  int explain_step = 0;
};

// A minGPT prompt: token ids separated by spaces or commas ("2 0 1 1 0 2").
std::vector<int> parse_ids(const std::string& text, int vocab) {
  std::vector<int> ids;
  std::string s = text;
  for (char& c : s)
    if (c == ',') c = ' ';
  std::istringstream in(s);
  std::string word;
  while (in >> word) {
    size_t used = 0;
    int id = -1;
    try {
      id = std::stoi(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size() || id < 0 || id >= vocab)
      throw UsageError(fmt::format("--prompt: '{}' is not a token id in [0, {}) (this model has no tokenizer: "
                                   "give ids like \"2 0 1\")", word, vocab));
    ids.push_back(id);
  }
  return ids;
}

void run(const GenerateCliOptions& o) {
  if (o.steps < 0) throw UsageError("--steps must be >= 0");
  if (o.temperature < 0) throw UsageError("--temperature must be >= 0");
  if (o.top_k < 0) throw UsageError("--top-k must be >= 0");
  models::LoadedLm lm = models::load_lm(o.model, o.heads);
  const models::LmModel& m = *lm.model;
  const models::LmConfig& cfg = m.config();
  const LmTokenizer* tok = lm.tokenizer.get();

  models::GenerateOptions g;
  g.steps = o.steps;
  g.sampler.temperature = o.temperature;
  g.sampler.top_k = o.top_k;
  g.seed = o.seed;
  g.record = !o.out.empty();
  g.norms = record_what(o.what).norms;
  g.mixing = record_what(o.what).mixing;
  if ((g.norms || g.mixing) && !g.record)
    throw UsageError(fmt::format("--record {} needs -o (the record to write)", g.mixing ? "mixing" : "norms"));
  g.relevance = record_what(o.what).relevance;
  if (g.relevance && !g.record) throw UsageError("--record relevance needs -o (the record to write)");
  if (o.explain_step != 0 && !g.relevance) throw UsageError("--explain-step needs --record relevance");
  g.explain_step = o.explain_step;
  g.max_record_mib = o.max_record_mib;
  g.threads = globals().threads;
  if (tok) {
    g.prompt = tok->encode(o.prompt, tok->bos() >= 0 && (tok->add_bos() || o.prompt.empty()));
    if (tok->eos() >= 0) g.stop_ids.push_back(tok->eos());
    // llama2.c ends a story at BOS, which delimits sequences in its training data.
    if (tok->bos() >= 0 && tok->bos() != tok->eos()) g.stop_ids.push_back(tok->bos());
  } else {
    g.prompt = parse_ids(o.prompt, cfg.vocab);
    if (g.prompt.empty()) throw UsageError("--prompt: this model has no tokenizer and no BOS token: give token ids, e.g. --prompt \"2 0 1 1 0 2\"");
  }
  fmt::print(stderr, "{} ({} {}: {} layers, {} heads / {} KV heads, d {}, vocab {}; {:.2f} M parameters): {} prompt tokens\n",
             cfg.name, lm.source, models::lm_arch_name(cfg.arch), cfg.layers, cfg.heads, cfg.kv_heads, cfg.dim,
             cfg.vocab, cfg.parameters() / 1e6, g.prompt.size());

  // stdout: the prompt's text, then each generated token as soon as it is chosen.
  if (tok) {
    fmt::print("{}", tok->decode(g.prompt));
    g.on_token = [tok](int prev, int id) {
      const std::string piece = tok->decode(prev, id);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    };
  } else {
    for (size_t i = 0; i < g.prompt.size(); ++i) fmt::print("{}{}", i ? " " : "", g.prompt[i]);
    g.on_token = [](int, int id) {
      fmt::print(" {}", id);
      std::fflush(stdout);
    };
  }
  models::GenerateResult r = models::generate(m, g, tok);
  if (!tok) fmt::print("\n");
  std::fflush(stdout);
  const int generated = static_cast<int>(r.ids.size()) - r.prompt_tokens;
  // The first generated token comes from the prefill's logits; each later one (and, when recording,
  // the last) costs one decode step. No step, no rate: "0 tokens/s" would be a measurement it is not.
  const std::string decode = r.decoded > 0 ? fmt::format("{} decode steps in {:.1f} ms ({:.0f} tokens/s)", r.decoded,
                                                         r.decode_seconds * 1e3, r.decoded / r.decode_seconds)
                                           : std::string("no decode step to time");
  fmt::print(stderr, "\n{} tokens generated; prefill {:.1f} ms, {}{}\n", generated, r.prefill_seconds * 1e3, decode,
             g.record ? ", recording every head" : "");
  if (r.record) {
    r.record->metadata["source"] = std::filesystem::path(o.model).filename().string();
    save_record(o.out, *r.record);
    if (g.relevance)
      fmt::print(stderr, "relevance (grad-rollout decoder.relevance, LRP rollout decoder.lrp_relevance): {} generated "
                 "token(s) explained in {:.1f} ms\n",
                 r.record->metadata.count("relevance_rows") ? nlohmann::json::parse(r.record->metadata["relevance_rows"]).size() : 0,
                 r.relevance_seconds * 1e3);
    fmt::print(stderr, "wrote {} ({} layers x {} heads x {}x{} tokens)\n", o.out, cfg.layers, cfg.heads, r.ids.size(),
               r.ids.size());
  }
}

}  // namespace

void add_generate(CLI::App& app) {
  auto o = std::make_shared<GenerateCliOptions>();
  auto* sub = app.add_subcommand("generate", "run a pretrained decoder LM (GGUF llama/gpt2, minGPT JSON): print text, record every head");
  sub->add_option("--model", o->model, "model: GGUF file (llama, gpt2), minGPT JSON checkpoint, or Hugging Face directory (gpt2, llama, mistral, qwen2)")->required();
  sub->add_option("--prompt", o->prompt, "text to continue (minGPT: token ids \"2 0 1\"); empty starts from BOS");
  sub->add_option("--steps", o->steps, "tokens to generate (0 = record the prompt only)");
  sub->add_option("--temperature", o->temperature, "sampling temperature (0 = greedy)");
  sub->add_option("--top-k", o->top_k, "sample among the k most likely tokens (0 = all)");
  sub->add_option("--seed", o->seed, "random seed (same seed, same text)");
  sub->add_option("-o,--out", o->out, "write an AttentionRecord (.safetensors) with every layer x head over all tokens");
  sub->add_option("--max-record-mib", o->max_record_mib, "refuse a record larger than this (MiB), before computing");
  // mixing: each token re-runs each layer's MLP half once per earlier token
  add_record_what(sub, o->what, true, true,
                  "decoder.relevance [1, T, T]: grad-rollout relevance of the earlier tokens for each generated "
                  "token (Chefer et al. ICCV 2021), and decoder.lrp_relevance: the same rollout of each map's LRP "
                  "relevance (Chefer et al. CVPR 2021)");
  sub->add_option("--explain-step", o->explain_step,
                  "with --record relevance: explain only the k-th generated token (1-based; 0 = every generated "
                  "token, one backward pass each)")->check(non_negative_number());
  sub->add_option("--heads", o->heads, "minGPT JSON without a config: number of heads (default: the file's, else 3)");
  set_example(sub, "attnviz generate --model ../shared/models/stories260K/stories260K.gguf --steps 200 --temperature 0 -o story.safetensors");
  sub->callback([o] { run(*o); });
}

}  // namespace attnviz::cli
