// Demo section "Pretrained language model": stories260K generates a story, every head is recorded,
// and two heads are drawn (previous token, BOS). Skipped with one line when no model is found.
#include "cli/commands.hpp"
#include "cli/demo.hpp"

#include <attnviz/models/lm.hpp>
#include <attnviz/record/record.hpp>
#include <attnviz/render/plots.hpp>
#include <attnviz/text/lm_tokenizer.hpp>

#include <fmt/core.h>

#include <cstdlib>
#include <filesystem>

namespace attnviz::cli {

namespace {
// $ATTNVIZ_MODELS, else ../shared/models beside the checkout.
std::filesystem::path find_models() {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("ATTNVIZ_MODELS"); env && *env) return env;
  return fs::path(ATTNVIZ_SOURCE_DIR).parent_path() / "shared" / "models";
}
}  // namespace

void demo_lm(DemoContext& ctx) {
  namespace fs = std::filesystem;
  const fs::path model = find_models() / "stories260K" / "stories260K.gguf";
  if (!fs::exists(model)) {
    ctx.notes.push_back("LLM section skipped: no " + model.string() +
                        " (set ATTNVIZ_MODELS to a folder with stories260K/stories260K.gguf)");
    return;
  }
  models::LoadedLm lm = models::load_lm(model);
  models::GenerateOptions g;
  g.prompt = {lm.tokenizer ? lm.tokenizer->bos() : 1};
  g.steps = 40;
  g.record = true;
  models::GenerateResult r = models::generate(*lm.model, g, lm.tokenizer.get());
  const fs::path dir = ctx.out / "llm";
  fs::create_directories(dir);
  save_record(dir / "story.safetensors", *r.record);
  const std::string sec = "Pretrained language model (stories260K)";
  // Heads found by measuring on this story (README): layer 1 head 3 attends to the previous token,
  // layer 4 head 5 to BOS.
  render::render_heatmap(*r.record, {"decoder.layer1.self", 3, false}, {}, dir / "prev_token.png");
  ctx.items.push_back({sec, "A previous-token head",
                       "Greedy story from BOS (41 tokens), layer 1 head 3: each token attends to the one before it. "
                       "Gray above the diagonal: masked by the causal mask, not attended.",
                       "llm/prev_token.png", {"llm/story.safetensors"}});
  render::render_heatmap(*r.record, {"decoder.layer4.self", 5, false}, {}, dir / "bos.png");
  ctx.items.push_back({sec, "A head that attends to BOS", "Layer 4 head 5: much of each row's weight goes to <s>.",
                       "llm/bos.png", {}});
  render::LinesOptions lo;
  lo.heads = {5};
  lo.query = static_cast<int>(r.ids.size()) - 1;
  render::render_lines(*r.record, "decoder.layer4.self", lo, dir / "last_query.png");
  ctx.items.push_back({sec, "One query's lines", "The last generated token's attention in layer 4 head 5 (render lines --query).",
                       "llm/last_query.png", {}});
  ctx.notes.push_back(fmt::format("llm: stories260K generated {} tokens, every head recorded ({})", r.ids.size() - 1,
                                  (dir / "story.safetensors").string()));
}

}  // namespace attnviz::cli
