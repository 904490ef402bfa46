// minGPT checkpoints as JSON (base64 float32 tensors in torch layout) loaded into the gpt2 family.
#include <attnviz/error.hpp>
#include <attnviz/models/lm.hpp>

#include <fmt/core.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <cmath>
#include <sstream>

namespace attnviz::models {

namespace {

// Standard base64 (RFC 4648, '=' padding) to bytes; throws on any other character or a bad length.
std::string base64_decode(const std::string& s, const std::string& path, const std::string& tensor) {
  static const std::array<int, 256> table = [] {
    std::array<int, 256> t{};
    t.fill(-1);
    const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(a[i])] = i;
    return t;
  }();
  if (s.size() % 4 != 0)
    throw InputError(path, fmt::format("tensor '{}': base64 data length {} is not a multiple of 4", tensor, s.size()));
  std::string out;
  out.reserve(s.size() / 4 * 3);
  for (size_t i = 0; i < s.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int j = 0; j < 4; ++j) {
      const char ch = s[i + j];
      if (ch == '=' && i + 4 == s.size() && j >= 2) {
        v[j] = 0;
        ++pad;
        continue;
      }
      if (pad > 0 || (v[j] = table[static_cast<unsigned char>(ch)]) < 0)
        throw InputError(path, fmt::format("tensor '{}': invalid base64 character at position {}", tensor, i + j));
    }
    const unsigned n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out.push_back(static_cast<char>(n >> 16));
    if (pad < 2) out.push_back(static_cast<char>((n >> 8) & 0xFF));
    if (pad < 1) out.push_back(static_cast<char>(n & 0xFF));
  }
  return out;
}

struct JsonTensor {
  std::vector<long> shape;
  const nlohmann::json* entry = nullptr;
};

const std::map<std::string, std::string>& top_names() {
  static const std::map<std::string, std::string> top = {
      {"transformer.wte.weight", "token_embd.weight"},   {"transformer.wpe.weight", "position_embd.weight"},
      {"transformer.ln_f.weight", "output_norm.weight"}, {"transformer.ln_f.bias", "output_norm.bias"},
      {"lm_head.weight", "output.weight"}};
  return top;
}
const std::map<std::string, std::string>& block_names() {
  static const std::map<std::string, std::string> per = {
      {"ln_1.weight", "attn_norm.weight"},          {"ln_1.bias", "attn_norm.bias"},
      {"attn.c_attn.weight", "attn_qkv.weight"},    {"attn.c_attn.bias", "attn_qkv.bias"},
      {"attn.c_proj.weight", "attn_output.weight"}, {"attn.c_proj.bias", "attn_output.bias"},
      {"ln_2.weight", "ffn_norm.weight"},           {"ln_2.bias", "ffn_norm.bias"},
      {"mlp.c_fc.weight", "ffn_up.weight"},         {"mlp.c_fc.bias", "ffn_up.bias"},
      {"mlp.c_proj.weight", "ffn_down.weight"},     {"mlp.c_proj.bias", "ffn_down.bias"},
      {"attn.bias", ""}};   // the causal-mask buffer, not a weight
  return per;
}

// minGPT state-dict name -> our table name ("" = a buffer to ignore).
std::string map_name(const std::string& n, const std::string& path) {
  static const std::regex block(R"(transformer\.h\.(\d+)\.(.+))");
  if (auto it = top_names().find(n); it != top_names().end()) return it->second;
  std::smatch m;
  if (std::regex_match(n, m, block)) {
    if (auto it = block_names().find(m[2].str()); it != block_names().end())
      return it->second.empty() ? "" : "blk." + m[1].str() + "." + it->second;
  }
  throw InputError(path, fmt::format("unexpected tensor '{}' (not a minGPT weight)", n));
}

// Our table name -> the minGPT name (for messages about tensors the file lacks).
std::string mingpt_name(const std::string& ours) {
  for (const auto& [theirs, o] : top_names())
    if (o == ours) return theirs;
  static const std::regex block(R"(blk\.(\d+)\.(.+))");
  std::smatch m;
  if (std::regex_match(ours, m, block))
    for (const auto& [theirs, o] : block_names())
      if (o == m[2].str()) return "transformer.h." + m[1].str() + "." + theirs;
  return ours;
}

std::string shape_str(const std::vector<long>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

}  // namespace

LoadedLm load_lm_mingpt_json(const std::filesystem::path& file, int heads) {
  const std::string path = file.string();
  std::ifstream in(file, std::ios::binary);
  if (!in) throw InputError(path, "cannot open file");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path, fmt::format("not valid JSON ({})", e.what()));
  }
  if (!j.is_object()) throw InputError(path, "a minGPT checkpoint is a JSON object of tensors");

  // Pass 1: every entry's name and declared shape (nothing decoded yet).
  std::map<std::string, JsonTensor> tensors;   // by our table name
  std::map<std::string, std::string> original; // our name -> file name, for messages
  int n_head_cfg = 0;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    if (name == "config") {
      if (it->is_object() && it->contains("n_head") && (*it)["n_head"].is_number_integer())
        n_head_cfg = (*it)["n_head"].get<int>();
      continue;
    }
    const std::string ours = map_name(name, path);
    const nlohmann::json& e = *it;
    if (!e.is_object() || !e.contains("shape") || !e.contains("data") || !e["shape"].is_array() || !e["data"].is_string())
      throw InputError(path, fmt::format("tensor '{}': expected an object with \"shape\" and base64 \"data\"", name));
    if (e.contains("dtype") && e["dtype"] != "torch.float32")
      throw InputError(path, fmt::format("tensor '{}': dtype {} (only torch.float32 is supported)", name, e["dtype"].dump()));
    if (ours.empty()) continue;
    JsonTensor t;
    for (const auto& d : e["shape"]) {
      if (!d.is_number_integer() || d.get<long>() <= 0 || d.get<long>() > (1L << 24))
        throw InputError(path, fmt::format("tensor '{}': bad shape {}", name, e["shape"].dump()));
      t.shape.push_back(d.get<long>());
    }
    t.entry = &e;
    tensors[ours] = t;
    original[ours] = name;
  }

  // The config, inferred from names and shapes.
  auto need = [&](const std::string& ours, const char* theirs) -> const JsonTensor& {
    auto it = tensors.find(ours);
    if (it == tensors.end()) throw InputError(path, fmt::format("missing tensor '{}'", theirs));
    return it->second;
  };
  const JsonTensor& wte = need("token_embd.weight", "transformer.wte.weight");
  const JsonTensor& wpe = need("position_embd.weight", "transformer.wpe.weight");
  if (wte.shape.size() != 2 || wpe.shape.size() != 2)
    throw InputError(path, "tensors 'transformer.wte.weight' and 'transformer.wpe.weight' must be 2-D");
  LmConfig cfg;
  cfg.arch = LmArch::Gpt2;
  cfg.name = file.stem().string();
  cfg.vocab = static_cast<int>(wte.shape[0]);
  cfg.dim = static_cast<int>(wte.shape[1]);
  cfg.context = static_cast<int>(wpe.shape[0]);
  while (tensors.count("blk." + std::to_string(cfg.layers) + ".attn_qkv.weight")) ++cfg.layers;
  if (cfg.layers == 0) throw InputError(path, "missing tensor 'transformer.h.0.attn.c_attn.weight'");
  const JsonTensor& fc = need("blk.0.ffn_up.weight", "transformer.h.0.mlp.c_fc.weight");
  cfg.ffn = static_cast<int>(fc.shape[0]);
  cfg.heads = heads > 0 ? heads : (n_head_cfg > 0 ? n_head_cfg : 3);
  if (cfg.dim % cfg.heads != 0)
    throw InputError(path, fmt::format("width {} is not divisible by {} heads", cfg.dim, cfg.heads));
  cfg.kv_heads = cfg.heads;
  cfg.head_dim = cfg.dim / cfg.heads;
  cfg.norm_eps = 1e-5f;
  cfg.tied_output = !tensors.count("output.weight");
  cfg.validate(path);

  // Pass 2: every table entry present with its shape (vectors as [n] or [1, n]), then decode.
  auto model = std::make_unique<LmModel>(cfg);
  std::set<std::string> used;
  for (const auto& spec : lm_tensor_table(cfg)) {
    if (spec.optional) continue;
    auto it = tensors.find(spec.name);
    if (it == tensors.end())
      throw InputError(path, fmt::format("missing tensor '{}' ({} layers inferred)", mingpt_name(spec.name), cfg.layers));
    const JsonTensor& t = it->second;
    const bool vec = spec.rows == 1;
    const bool ok = vec ? (t.shape == std::vector<long>{spec.cols} || t.shape == std::vector<long>{1, spec.cols})
                        : t.shape == std::vector<long>{spec.rows, spec.cols};
    if (!ok)
      throw InputError(path, fmt::format("tensor '{}': expected shape {}, found {}", original[spec.name],
                                         vec ? shape_str({spec.cols}) : shape_str({spec.rows, spec.cols}),
                                         shape_str(t.shape)));
    const std::string bytes = base64_decode((*t.entry)["data"].get_ref<const std::string&>(), path, original[spec.name]);
    const size_t want = static_cast<size_t>(spec.rows) * spec.cols * sizeof(float);
    if (bytes.size() != want)
      throw InputError(path, fmt::format("tensor '{}': {} bytes of data, expected {} for shape {}", original[spec.name],
                                         bytes.size(), want, shape_str(t.shape)));
    Mat& dst = model->weight(spec.name);
    std::memcpy(dst.data(), bytes.data(), want);   // little-endian float32, as the machine
    for (Eigen::Index i = 0; i < dst.size(); ++i)
      if (!std::isfinite(dst.data()[i]))
        throw InputError(path, fmt::format("tensor '{}': non-finite value at element {}", original[spec.name], i));
    used.insert(spec.name);
  }
  for (const auto& [ours, t] : tensors)
    if (!used.count(ours))
      throw InputError(path, fmt::format("unexpected tensor '{}' for a {}-layer model", original[ours], cfg.layers));
  LoadedLm out;
  out.model = std::move(model);
  out.source = "mingpt-json";
  return out;
}

}  // namespace attnviz::models
