// Demo section "Pretrained language model": stories260K generates a story, every head is recorded,
// and two heads are drawn (previous token, BOS). Skipped with one line when no model is found.
#include "cli/commands.hpp"
#include "cli/demo.hpp"

#include <attnviz/error.hpp>
#include <attnviz/models/lm.hpp>
#include <attnviz/record/record.hpp>
#include <attnviz/render/plots.hpp>
#include <attnviz/text/lm_tokenizer.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

namespace attnviz::cli {

namespace {
// The head whose rows put the most weight on one chosen key: mean over queries of
// w[q, key(q)], for queries where that key exists. Heads are found by measuring on the
// generated text, so the section works for any model given with --model, not only stories260K.
struct HeadPick {
  std::string tensor;
  int head = 0;
  double mass = -1;
};
template <class KeyOf>
HeadPick best_head(const AttentionRecord& rec, KeyOf key_of) {
  HeadPick best;
  for (const AttentionTensor* t : rec.layers("decoder", "self")) {
    for (int h = 0; h < t->heads; ++h) {
      double sum = 0;
      int n = 0;
      for (int q = 0; q < t->queries; ++q) {
        const int k = key_of(q);
        if (k < 0 || k >= t->keys || k > q) continue;
        sum += t->at(h, q, k);
        ++n;
      }
      if (n > 0 && sum / n > best.mass) best = {t->name, h, sum / n};
    }
  }
  return best;
}
}  // namespace

void demo_lm(DemoContext& ctx) {
  namespace fs = std::filesystem;
  fs::path model = ctx.lm_model;
  if (model.empty()) {
    model = shared_models_dir() / "stories260K" / "stories260K.gguf";
    if (!fs::exists(model)) {
      ctx.notes.push_back("LLM section skipped: no " + model.string() +
                          " (pass --model FILE.gguf, or set ATTNVIZ_MODELS to a folder with stories260K/stories260K.gguf)");
      return;
    }
  } else if (!fs::exists(model)) {
    throw InputError(model.string(), "--model: no such file");
  }
  models::LoadedLm lm = models::load_lm(model);
  const std::string name = lm.model->config().name.empty() ? model.stem().string() : lm.model->config().name;
  models::GenerateOptions g;
  g.prompt = {lm.tokenizer ? lm.tokenizer->bos() : 1};
  // 40 tokens, or as many as the model's context holds after the prompt (minGPT sorter: 11).
  g.steps = std::max(0, std::min(40, lm.model->config().context - static_cast<int>(g.prompt.size())));
  g.record = true;
  models::GenerateResult r = models::generate(*lm.model, g, lm.tokenizer.get());
  const fs::path dir = ctx.out / "llm";
  fs::create_directories(dir);
  save_record(dir / "story.safetensors", *r.record);
  const std::string sec = "Pretrained language model (" + name + ")";
  // Queries 1.. only: query 0 can only attend to itself, which is both "previous" and "BOS".
  const HeadPick prev = best_head(*r.record, [](int q) { return q >= 1 ? q - 1 : -1; });
  const HeadPick bos = best_head(*r.record, [](int q) { return q >= 1 ? 0 : -1; });
  if (prev.tensor.empty() || bos.tensor.empty()) {
    ctx.notes.push_back(fmt::format("llm: {} stopped after {} token(s): too few to pick heads; record in {}", name,
                                    r.ids.size(), (dir / "story.safetensors").string()));
    return;
  }
  const auto where = [](const HeadPick& p) {
    const TensorName n = parse_tensor_name(p.tensor);
    return fmt::format("layer {} head {}", n.layer, p.head);
  };
  render::render_heatmap(*r.record, {prev.tensor, prev.head, false}, {}, dir / "prev_token.png");
  ctx.items.push_back({sec, "A previous-token head",
                       fmt::format("Greedy text from BOS ({} tokens), {}: each token attends to the one before it "
                                   "(mean weight on the previous token {:.2f}, the highest of all heads). Gray above "
                                   "the diagonal: masked by the causal mask, not attended.",
                                   r.ids.size(), where(prev), prev.mass),
                       "llm/prev_token.png", {"llm/story.safetensors"}});
  render::render_heatmap(*r.record, {bos.tensor, bos.head, false}, {}, dir / "bos.png");
  ctx.items.push_back({sec, "A head that attends to BOS",
                       fmt::format("{}: mean weight {:.2f} on the first token, the highest of all heads.", where(bos),
                                   bos.mass),
                       "llm/bos.png", {}});
  render::LinesOptions lo;
  lo.heads = {bos.head};
  lo.query = static_cast<int>(r.ids.size()) - 1;
  render::render_lines(*r.record, bos.tensor, lo, dir / "last_query.png");
  ctx.items.push_back({sec, "One query's lines",
                       "The last generated token's attention in " + where(bos) + " (render lines --query).",
                       "llm/last_query.png", {}});
  ctx.notes.push_back(fmt::format("llm: {} generated {} tokens, every head recorded ({}); previous-token head {}, BOS head {}",
                                  name, r.ids.size() - 1, (dir / "story.safetensors").string(), where(prev), where(bos)));
}

}  // namespace attnviz::cli
