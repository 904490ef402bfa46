// Hugging Face GPT-2 and Llama directories loaded into the LM families: config.json -> LmConfig,
// the checkpoint's tensor names mapped onto the family table (GPT-2's Conv1D weights are stored
// [in, out] and transposed; Llama keeps rotate_half RoPE pairs), and the directory's tokenizer.
#include "models/hf_checkpoint.hpp"

#include <attnviz/error.hpp>
#include <attnviz/models/lm.hpp>
#include <attnviz/text/hf_tokenizer.hpp>

#include <fmt/core.h>

#include <regex>

namespace attnviz::models {

namespace fs = std::filesystem;

namespace {

constexpr int kMaxContext = 32768;   // as for GGUF files: RoPE tables and caches are sized by it

struct HfName {
  std::string name;       // in the checkpoint
  bool transpose = false; // stored [in, out] (GPT-2 Conv1D)
};

// Our table name -> the checkpoint's (GPT-2 names after the optional "transformer." prefix).
HfName hf_name(LmArch arch, const std::string& ours, const std::string& prefix) {
  static const std::regex blk(R"(blk\.(\d+)\.(.+))");
  std::smatch m;
  if (arch == LmArch::Gpt2) {
    static const std::map<std::string, std::string> top = {{"token_embd.weight", "wte.weight"},
                                                           {"position_embd.weight", "wpe.weight"},
                                                           {"output_norm.weight", "ln_f.weight"},
                                                           {"output_norm.bias", "ln_f.bias"}};
    if (ours == "output.weight") return {"lm_head.weight"};
    if (auto it = top.find(ours); it != top.end()) return {prefix + it->second};
    static const std::map<std::string, HfName> per = {
        {"attn_norm.weight", {"ln_1.weight"}},        {"attn_norm.bias", {"ln_1.bias"}},
        {"attn_qkv.weight", {"attn.c_attn.weight", true}}, {"attn_qkv.bias", {"attn.c_attn.bias"}},
        {"attn_output.weight", {"attn.c_proj.weight", true}}, {"attn_output.bias", {"attn.c_proj.bias"}},
        {"ffn_norm.weight", {"ln_2.weight"}},         {"ffn_norm.bias", {"ln_2.bias"}},
        {"ffn_up.weight", {"mlp.c_fc.weight", true}},  {"ffn_up.bias", {"mlp.c_fc.bias"}},
        {"ffn_down.weight", {"mlp.c_proj.weight", true}}, {"ffn_down.bias", {"mlp.c_proj.bias"}}};
    if (std::regex_match(ours, m, blk)) {
      const HfName& h = per.at(m[2].str());
      return {prefix + "h." + m[1].str() + "." + h.name, h.transpose};
    }
  } else {
    static const std::map<std::string, std::string> top = {{"token_embd.weight", "model.embed_tokens.weight"},
                                                           {"output_norm.weight", "model.norm.weight"},
                                                           {"output.weight", "lm_head.weight"}};
    if (auto it = top.find(ours); it != top.end()) return {it->second};
    static const std::map<std::string, std::string> per = {
        {"attn_norm.weight", "input_layernorm.weight"},  {"attn_q.weight", "self_attn.q_proj.weight"},
        {"attn_k.weight", "self_attn.k_proj.weight"},    {"attn_v.weight", "self_attn.v_proj.weight"},
        {"attn_q.bias", "self_attn.q_proj.bias"},        {"attn_k.bias", "self_attn.k_proj.bias"},
        {"attn_v.bias", "self_attn.v_proj.bias"},        {"attn_output.weight", "self_attn.o_proj.weight"},
        {"ffn_norm.weight", "post_attention_layernorm.weight"}, {"ffn_gate.weight", "mlp.gate_proj.weight"},
        {"ffn_up.weight", "mlp.up_proj.weight"},         {"ffn_down.weight", "mlp.down_proj.weight"}};
    if (std::regex_match(ours, m, blk)) return {"model.layers." + m[1].str() + "." + per.at(m[2].str())};
  }
  throw std::logic_error("hf_name: no mapping for " + ours);
}

LmConfig config_from(const hf::Checkpoint& ck, const std::string& model_type) {
  const std::string cfgp = ck.config_path();
  LmConfig c;
  c.name = ck.dir().filename().string();
  if (c.name.empty()) c.name = ck.dir().parent_path().filename().string();
  if (model_type == "gpt2") {
    c.arch = LmArch::Gpt2;
    c.dim = ck.get_int("n_embd", 1, 1 << 16);
    c.heads = ck.get_int("n_head", 1, 1024);
    c.layers = ck.get_int("n_layer", 1, 4096);
    c.context = ck.get_int("n_positions", 1, 1 << 20);
    c.vocab = ck.get_int("vocab_size", 1, 1 << 22);
    c.ffn = ck.get_int("n_inner", 1, 1 << 18, 4 * c.dim);
    c.kv_heads = c.heads;
    if (c.dim % c.heads != 0) throw InputError(cfgp, fmt::format("n_embd {} is not a multiple of n_head {}", c.dim, c.heads));
    c.head_dim = c.dim / c.heads;
    c.norm_eps = static_cast<float>(ck.get_float("layer_norm_epsilon", 1e-5));
    const std::string act = ck.get_string("activation_function", "gelu_new");
    if (act != "gelu_new" && act != "gelu_pytorch_tanh")
      throw InputError(cfgp, fmt::format("activation_function '{}' is not supported (gelu_new)", act));
    if (ck.get_bool("scale_attn_by_inverse_layer_idx", false) || ck.get_bool("reorder_and_upcast_attn", false))
      throw InputError(cfgp, "scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn are not supported");
    c.tied_output = true;   // GPT2LMHeadModel ties lm_head to wte; a stored lm_head is used as it is
  } else {
    c.arch = LmArch::Llama;
    c.rope_style = nn::RopeStyle::Halves;
    c.dim = ck.get_int("hidden_size", 1, 1 << 16);
    c.heads = ck.get_int("num_attention_heads", 1, 1024);
    c.layers = ck.get_int("num_hidden_layers", 1, 4096);
    c.kv_heads = ck.get_int("num_key_value_heads", 1, 1024, c.heads);
    c.ffn = ck.get_int("intermediate_size", 1, 1 << 18);
    c.vocab = ck.get_int("vocab_size", 1, 1 << 22);
    c.context = std::min(ck.get_int("max_position_embeddings", 1, 1 << 30, 2048), kMaxContext);
    if (c.dim % c.heads != 0 && !ck.config().contains("head_dim"))
      throw InputError(cfgp, fmt::format("hidden_size {} is not a multiple of num_attention_heads {}", c.dim, c.heads));
    c.head_dim = ck.get_int("head_dim", 1, 1024, c.dim / c.heads);
    c.norm_eps = static_cast<float>(ck.get_float("rms_norm_eps", 1e-6));
    c.rope_base = ck.get_float("rope_theta", 10000.0);
    c.tied_output = ck.get_bool("tie_word_embeddings", false);
    c.qkv_bias = model_type == "qwen2";   // q/k/v biases, none on o_proj
    if (model_type != "qwen2" && ck.get_bool("attention_bias", false))
      throw InputError(cfgp, "attention_bias (biases on q/k/v and o_proj) is not supported");
    if (ck.get_bool("mlp_bias", false)) throw InputError(cfgp, "mlp_bias is not supported");
    const std::string act = ck.get_string("hidden_act", "silu");
    if (act != "silu") throw InputError(cfgp, fmt::format("hidden_act '{}' is not supported (silu)", act));
    if (ck.config().contains("rope_scaling") && !ck.config()["rope_scaling"].is_null()) {
      const auto& rs = ck.config()["rope_scaling"];
      // A wrong-typed field (rope_type 3, factor "2") is refused by name, not by the JSON library.
      std::string type;
      for (const char* key : {"type", "rope_type"})
        if (rs.is_object() && rs.contains(key)) {
          if (!rs[key].is_string()) throw InputError(cfgp, fmt::format("rope_scaling.{} must be a string", key));
          type = rs[key].get<std::string>();
        }
      if (type == "linear" && rs.contains("factor") && rs["factor"].is_number()) c.rope_scale = rs["factor"].get<double>();
      else if (type != "default")
        throw InputError(cfgp, fmt::format("rope_scaling {} is not supported (linear)", rs.dump()));
    }
  }
  if (!(c.norm_eps > 0) || !(c.rope_base > 0) || !(c.rope_scale > 0) || !std::isfinite(c.rope_scale))
    throw InputError(cfgp, "norm epsilon, rope_theta and rope scaling factor must be positive");
  c.validate(cfgp);
  return c;
}

std::shared_ptr<const LmTokenizer> tokenizer_for(const hf::Checkpoint& ck, const LmConfig& cfg) {
  SpecialIds s;
  s.bos = ck.get_int("bos_token_id", -1, cfg.vocab - 1, -1);
  s.eos = ck.first_of({"eos_token_id"}) && ck.config()["eos_token_id"].is_number_integer()
              ? ck.get_int("eos_token_id", -1, cfg.vocab - 1, -1)
              : -1;   // a list of EOS ids (Llama 3) keeps the tokenizer's own
  const fs::path dir = ck.dir();
  LmVocab v;
  std::string file;
  if (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt")) {
    file = (dir / "vocab.json").string();
    v = read_gpt2_vocab(dir / "vocab.json", dir / "merges.txt", s);
  } else if (fs::exists(dir / "tokenizer.json")) {
    file = (dir / "tokenizer.json").string();
    v = read_tokenizer_json_bpe(dir / "tokenizer.json", s);
  } else {
    return nullptr;
  }
  if (static_cast<long>(v.tokens.size()) > cfg.vocab)
    throw InputError(file, fmt::format("the tokenizer has {} tokens but the model's vocab_size is {}", v.tokens.size(), cfg.vocab));
  return std::make_shared<const LmTokenizer>(std::move(v));
}

}  // namespace

LoadedLm load_lm_hf(const fs::path& dir) {
  const hf::Checkpoint ck = hf::Checkpoint::open(dir);
  const std::string model_type = ck.get_string("model_type", "");
  if (model_type != "gpt2" && model_type != "llama" && model_type != "mistral" && model_type != "qwen2")
    throw InputError(ck.config_path(), fmt::format("model_type '{}' is not a decoder LM this tool runs (gpt2, llama, "
                                                   "mistral, qwen2)", model_type));
  LmConfig cfg = config_from(ck, model_type);
  const std::string prefix = cfg.arch == LmArch::Gpt2 && ck.find("transformer.wte.weight") ? "transformer." : "";
  // A stored lm_head is used (an untied output) whatever tie_word_embeddings says.
  if (ck.find("lm_head.weight")) cfg.tied_output = false;

  std::vector<hf::Expect> expect;
  std::vector<std::pair<LmTensorSpec, HfName>> plan;
  for (const auto& spec : lm_tensor_table(cfg)) {
    const HfName h = hf_name(cfg.arch, spec.name, prefix);
    std::vector<std::int64_t> shape = spec.rows == 1 ? std::vector<std::int64_t>{spec.cols}
                                                     : h.transpose ? std::vector<std::int64_t>{spec.cols, spec.rows}
                                                                   : std::vector<std::int64_t>{spec.rows, spec.cols};
    expect.push_back({h.name, shape, spec.optional});
    plan.emplace_back(spec, h);
  }
  ck.check(expect, {".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq"}, model_type);

  LoadedLm out;
  out.tokenizer = tokenizer_for(ck, cfg);
  out.model = std::make_unique<LmModel>(cfg);
  for (const auto& [spec, h] : plan) {
    if (spec.optional && (cfg.tied_output || !ck.find(h.name))) continue;
    if (h.transpose) out.model->weight(spec.name) = ck.read(h.name, spec.cols, spec.rows).transpose();
    else out.model->weight(spec.name) = ck.read(h.name, spec.rows, spec.cols);
  }
  out.source = "hf-" + model_type;
  return out;
}

}  // namespace attnviz::models
