// `inspect` of a Hugging Face directory: config summary, weight files and the family's checks.
#include "models/hf_checkpoint.hpp"

#include <attnviz/error.hpp>
#include <attnviz/models/encoder.hpp>
#include <attnviz/models/hf.hpp>
#include <attnviz/models/lm.hpp>
#include <attnviz/text/lm_tokenizer.hpp>
#include <attnviz/text/hf_tokenizer.hpp>

#include <fmt/core.h>

namespace attnviz::models {

namespace fs = std::filesystem;

bool is_hf_dir(const fs::path& p) { return fs::is_directory(p) && fs::exists(p / "config.json"); }

bool hf_is_encoder(const std::string& t) { return t == "bert" || t == "roberta" || t == "distilbert" || t == "vit"; }

std::string hf_model_type(const fs::path& dir) { return hf::Checkpoint::open(dir).get_string("model_type", ""); }

std::string describe_hf_dir(const fs::path& dir) {
  const hf::Checkpoint ck = hf::Checkpoint::open(dir);
  const std::string type = ck.get_string("model_type", "");
  std::string s = fmt::format("Hugging Face directory, model_type {}\n", type.empty() ? "(none)" : type);
  std::map<std::string, std::pair<int, std::int64_t>> by_dtype;
  std::set<std::string> files;
  for (const auto& [name, t] : ck.tensors()) {
    auto& e = by_dtype[t.info.dtype];
    ++e.first;
    e.second += t.info.numel();
    files.insert(t.file.filename().string());
  }
  std::string fl;
  for (const auto& f : files) fl += (fl.empty() ? "" : ", ") + f;
  s += fmt::format("weights: {} ({} tensors)\n", fl, ck.tensors().size());
  for (const auto& [dt, e] : by_dtype) s += fmt::format("  {}: {} tensors, {} values\n", dt, e.first, e.second);
  if (hf_is_encoder(type)) {
    const LoadedEncoder enc = load_encoder_hf(dir);
    const EncoderConfig& c = enc.model->config();
    s += fmt::format("family {}: {} layers, {} heads, d {}, ffn {}, {} positions, {}\n", encoder_family_name(c.family), c.layers,
                     c.heads, c.dim, c.ffn, c.positions, c.pre_norm ? "pre-LN" : "post-LN");
    if (c.family == EncoderFamily::Vit)
      s += fmt::format("image {}x{}, patch {} ({}x{} grid), {} labels\n", c.image_size, c.image_size, c.patch_size, c.grid(),
                       c.grid(), c.labels);
    else s += fmt::format("vocab {}, token types {}\n", c.vocab, c.type_vocab);
    if (enc.wordpiece) s += fmt::format("tokenizer: WordPiece, {} tokens, lowercase {}\n", enc.wordpiece->size(), enc.wordpiece->options().lowercase);
    if (enc.bpe) s += fmt::format("tokenizer: byte-level BPE, {} tokens\n", enc.bpe->size());
    s += fmt::format("parameters: {}\n", enc.model->params().count());
    s += fmt::format("record: attnviz record {} --model {} ...\n", c.family == EncoderFamily::Vit ? "vit" : "encoder", dir.string());
  } else {
    const LoadedLm lm = load_lm_hf(dir);
    const LmConfig& c = lm.model->config();
    s += fmt::format("family {}: {} layers, {} heads / {} KV heads, head {}, d {}, ffn {}, vocab {}, context {}, {} output\n",
                     lm_arch_name(c.arch), c.layers, c.heads, c.kv_heads, c.head_dim, c.dim, c.ffn, c.vocab, c.context,
                     c.tied_output ? "tied" : "untied");
    if (lm.tokenizer) s += fmt::format("tokenizer: {} ({} tokens)\n", lm.tokenizer->model() == "gpt2" ? "byte-level BPE" : "BPE with byte fallback", lm.tokenizer->size());
    else s += "tokenizer: none (prompts are token ids)\n";
    s += fmt::format("parameters: {}\n", c.parameters());
    s += fmt::format("generate: attnviz generate --model {} --prompt \"...\"\n", dir.string());
  }
  return s;
}

}  // namespace attnviz::models
