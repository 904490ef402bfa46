// GGUF checkpoints (architectures llama and gpt2) loaded into the LM families, with their tokenizer;
// and load_lm, which tells a GGUF file from a minGPT JSON checkpoint by content.
#include <attnviz/error.hpp>
#include <attnviz/io/gguf.hpp>
#include <attnviz/models/lm.hpp>
#include <attnviz/text/lm_tokenizer.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>

namespace attnviz::models {

namespace {

// RoPE tables and KV caches are sized by the context; files that claim a huge one (131072 for
// Llama 3) are capped here, and longer sequences are refused with a message.
constexpr int kMaxContext = 32768;

int positive_int(const GgufFile& f, const std::string& key, std::int64_t fallback = -1) {
  const std::int64_t v = fallback >= 0 ? f.get_int(key, fallback) : f.get_int(key);
  if (v <= 0 || v > (1LL << 30))
    throw InputError(f.path().string(), fmt::format("metadata {} = {} is not a usable size", key, v));
  return static_cast<int>(v);
}

std::string ne_str(const std::vector<std::uint64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

LmConfig config_from(const GgufFile& f) {
  const std::string path = f.path().string();
  const std::string arch = f.get_string("general.architecture");
  LmConfig c;
  if (arch == "llama") c.arch = LmArch::Llama;
  else if (arch == "gpt2") c.arch = LmArch::Gpt2;
  else
    throw InputError(path, fmt::format("architecture '{}' is not supported (attnviz runs llama and gpt2)", arch));
  const std::string p = arch + ".";
  c.name = f.get_string("general.name", "");
  if (c.name.empty() || c.name == arch) c.name = f.path().stem().string();   // stories260K's says "llama"
  c.layers = positive_int(f, p + "block_count");
  c.dim = positive_int(f, p + "embedding_length");
  c.heads = positive_int(f, p + "attention.head_count");
  c.kv_heads = positive_int(f, p + "attention.head_count_kv", c.heads);
  c.ffn = positive_int(f, p + "feed_forward_length");
  c.context = std::min(positive_int(f, p + "context_length", 2048), kMaxContext);
  if (c.dim % c.heads != 0 && !f.has(p + "attention.key_length"))
    throw InputError(path, fmt::format("embedding_length {} is not divisible by head_count {}", c.dim, c.heads));
  c.head_dim = positive_int(f, p + "attention.key_length", c.dim / c.heads);
  if (f.has(p + "attention.value_length") && f.get_int(p + "attention.value_length") != c.head_dim)
    throw InputError(path, "attention.value_length differs from key_length (not supported)");
  const GgufTensorInfo* emb = f.find("token_embd.weight");
  if (!emb) throw InputError(path, "missing tensor 'token_embd.weight'");
  if (emb->ne.size() != 2) throw InputError(path, "tensor 'token_embd.weight' is not a matrix");
  c.vocab = static_cast<int>(std::min<std::uint64_t>(emb->ne[1], 1u << 30));
  c.tied_output = f.find("output.weight") == nullptr;
  if (c.arch == LmArch::Llama) {
    c.norm_eps = static_cast<float>(f.get_float(p + "attention.layer_norm_rms_epsilon", 1e-5));
    c.rope_base = f.get_float(p + "rope.freq_base", 10000.0);
    const std::string scaling = f.get_string(p + "rope.scaling.type", "none");
    if (scaling == "linear") c.rope_scale = f.get_float(p + "rope.scaling.factor", 1.0);
    else if (scaling != "none")
      throw InputError(path, fmt::format("RoPE scaling '{}' is not supported (none, linear)", scaling));
    else if (f.has(p + "rope.scale_linear")) c.rope_scale = f.get_float(p + "rope.scale_linear");
    c.qkv_bias = f.find("blk.0.attn_q.bias") != nullptr;
  } else {
    c.norm_eps = static_cast<float>(f.get_float(p + "attention.layer_norm_epsilon", 1e-5));
  }
  if (!std::isfinite(c.norm_eps) || !std::isfinite(c.rope_base) || !std::isfinite(c.rope_scale))
    throw InputError(path, "non-finite norm epsilon or RoPE parameter");
  c.validate(path);
  return c;
}

std::shared_ptr<const LmTokenizer> tokenizer_from(const GgufFile& f, int vocab) {
  if (!f.has("tokenizer.ggml.tokens")) return nullptr;
  LmVocab v;
  v.model = f.get_string("tokenizer.ggml.model", "llama");
  v.tokens = f.get_string_array("tokenizer.ggml.tokens");
  if (f.has("tokenizer.ggml.scores")) v.scores = f.get_float_array("tokenizer.ggml.scores");
  if (f.has("tokenizer.ggml.token_type")) {
    for (std::int64_t t : f.get_int_array("tokenizer.ggml.token_type")) v.types.push_back(static_cast<std::int32_t>(t));
  }
  if (f.has("tokenizer.ggml.merges")) v.merges = f.get_string_array("tokenizer.ggml.merges");
  v.bos = static_cast<int>(f.get_int("tokenizer.ggml.bos_token_id", -1));
  v.eos = static_cast<int>(f.get_int("tokenizer.ggml.eos_token_id", -1));
  v.unk = static_cast<int>(f.get_int("tokenizer.ggml.unknown_token_id", -1));
  v.add_bos = f.get_bool("tokenizer.ggml.add_bos_token", v.model == "llama");
  if (static_cast<long>(v.tokens.size()) > vocab)
    throw InputError(f.path().string(), fmt::format("the tokenizer has {} tokens but the embedding only {} rows",
                                                    v.tokens.size(), vocab));
  try {
    return std::make_shared<const LmTokenizer>(std::move(v));
  } catch (const InputError& e) {
    throw InputError(f.path().string(), "tokenizer: " + e.reason());
  }
}

}  // namespace

LoadedLm load_lm_gguf(const std::filesystem::path& file) {
  const GgufFile f = GgufFile::open(file);
  const std::string path = f.path().string();
  const LmConfig cfg = config_from(f);
  // Every tensor the family needs, with its shape, before anything is dequantized.
  for (const auto& spec : lm_tensor_table(cfg)) {
    const GgufTensorInfo* t = f.find(spec.name);
    if (!t) {
      if (spec.optional) continue;
      throw InputError(path, fmt::format("missing tensor '{}' (a {} model with {} layers needs it)", spec.name,
                                         lm_arch_name(cfg.arch), cfg.layers));
    }
    const std::vector<std::uint64_t> want =
        spec.rows == 1 ? std::vector<std::uint64_t>{static_cast<std::uint64_t>(spec.cols)}
                       : std::vector<std::uint64_t>{static_cast<std::uint64_t>(spec.cols), static_cast<std::uint64_t>(spec.rows)};
    if (t->ne != want)
      throw InputError(path, fmt::format("tensor '{}': expected ne {}, found {}", spec.name, ne_str(want), ne_str(t->ne)));
  }
  LoadedLm out;
  out.tokenizer = tokenizer_from(f, cfg.vocab);
  out.model = std::make_unique<LmModel>(cfg);
  for (const auto& spec : lm_tensor_table(cfg)) {
    if (!f.find(spec.name)) continue;   // only the optional ones (checked above)
    if (spec.optional && cfg.tied_output) continue;
    Mat m = f.matrix(spec.name, spec.rows, spec.cols);
    for (Eigen::Index i = 0; i < m.size(); ++i)
      if (!std::isfinite(m.data()[i]))
        throw InputError(path, fmt::format("tensor '{}': non-finite value at element {}", spec.name, i));
    out.model->weight(spec.name) = std::move(m);
  }
  out.source = "gguf";
  return out;
}

LoadedLm load_lm(const std::filesystem::path& path, int heads) {
  if (std::filesystem::is_directory(path)) return load_lm_hf(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path.string(), std::filesystem::is_directory(path) ? "is a folder, not a model file" : "cannot open file");
  char head[64] = {};
  in.read(head, sizeof head);
  const std::string h(head, static_cast<size_t>(in.gcount()));
  if (looks_like_gguf(h)) return load_lm_gguf(path);
  size_t i = 0;
  while (i < h.size() && std::isspace(static_cast<unsigned char>(h[i]))) ++i;
  if (i < h.size() && h[i] == '{') return load_lm_mingpt_json(path, heads);
  throw InputError(path.string(), "not a GGUF file or a minGPT JSON checkpoint");
}

}  // namespace attnviz::models
