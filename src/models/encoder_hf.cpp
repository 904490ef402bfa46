// Hugging Face encoder directories (bert, roberta, distilbert, vit): config.json -> EncoderConfig,
// the checkpoint-name table of each family, and the directory's tokenizer / image preprocessing.
#include "models/hf_checkpoint.hpp"

#include <attnviz/error.hpp>
#include <attnviz/io/atomic_file.hpp>
#include <attnviz/models/encoder.hpp>
#include <attnviz/text/hf_tokenizer.hpp>
#include <attnviz/text/lm_tokenizer.hpp>

#include <fmt/core.h>

#include <regex>

namespace attnviz::models {

namespace fs = std::filesystem;

namespace {

// Our name -> the checkpoint's, for a family, with the model prefix ("bert.", "" for a bare BertModel).
std::string hf_encoder_name(EncoderFamily f, const std::string& ours, const std::string& prefix) {
  static const std::regex layer(R"(layer(\d+)\.(.+))");
  std::smatch m;
  if (f == EncoderFamily::Vit) {
    static const std::map<std::string, std::string> top = {
        {"embeddings.patch.weight", "embeddings.patch_embeddings.projection.weight"},
        {"embeddings.patch.bias", "embeddings.patch_embeddings.projection.bias"},
        {"embeddings.cls", "embeddings.cls_token"},
        {"embeddings.position", "embeddings.position_embeddings"},
        {"final_norm.weight", "layernorm.weight"}, {"final_norm.bias", "layernorm.bias"}};
    if (ours.rfind("classifier.", 0) == 0) return ours;
    if (auto it = top.find(ours); it != top.end()) return prefix + it->second;
    static const std::map<std::string, std::string> per = {
        {"attn.q", "attention.attention.query"}, {"attn.k", "attention.attention.key"},
        {"attn.v", "attention.attention.value"}, {"attn.out", "attention.output.dense"},
        {"attn_norm", "layernorm_before"},       {"ffn_norm", "layernorm_after"},
        {"ffn.up", "intermediate.dense"},        {"ffn.down", "output.dense"}};
    if (std::regex_match(ours, m, layer)) {
      const std::string rest = m[2].str();
      const size_t dot = rest.rfind('.');
      return prefix + "encoder.layer." + m[1].str() + "." + per.at(rest.substr(0, dot)) + rest.substr(dot);
    }
  } else if (ours.rfind("pooler.", 0) == 0 || ours.rfind("classifier.", 0) == 0) {
    // The sequence-classification head: pooler (+ tanh / ReLU) and classifier on the first token.
    const bool pool = ours[0] == 'p';
    const std::string leaf = ours.substr(ours.find('.') + 1);   // weight | bias
    if (f == EncoderFamily::Roberta) return (pool ? "classifier.dense." : "classifier.out_proj.") + leaf;
    if (f == EncoderFamily::DistilBert) return (pool ? "pre_classifier." : "classifier.") + leaf;
    return pool ? prefix + "pooler.dense." + leaf : "classifier." + leaf;
  } else if (f == EncoderFamily::DistilBert) {
    static const std::map<std::string, std::string> top = {
        {"embeddings.word", "embeddings.word_embeddings.weight"},
        {"embeddings.position", "embeddings.position_embeddings.weight"},
        {"embeddings.norm.weight", "embeddings.LayerNorm.weight"}, {"embeddings.norm.bias", "embeddings.LayerNorm.bias"}};
    if (auto it = top.find(ours); it != top.end()) return prefix + it->second;
    static const std::map<std::string, std::string> per = {
        {"attn.q", "attention.q_lin"}, {"attn.k", "attention.k_lin"}, {"attn.v", "attention.v_lin"},
        {"attn.out", "attention.out_lin"}, {"attn_norm", "sa_layer_norm"}, {"ffn_norm", "output_layer_norm"},
        {"ffn.up", "ffn.lin1"}, {"ffn.down", "ffn.lin2"}};
    if (std::regex_match(ours, m, layer)) {
      const std::string rest = m[2].str();
      const size_t dot = rest.rfind('.');
      return prefix + "transformer.layer." + m[1].str() + "." + per.at(rest.substr(0, dot)) + rest.substr(dot);
    }
  } else {   // bert, roberta
    static const std::map<std::string, std::string> top = {
        {"embeddings.word", "embeddings.word_embeddings.weight"},
        {"embeddings.position", "embeddings.position_embeddings.weight"},
        {"embeddings.token_type", "embeddings.token_type_embeddings.weight"},
        {"embeddings.norm.weight", "embeddings.LayerNorm.weight"}, {"embeddings.norm.bias", "embeddings.LayerNorm.bias"}};
    if (auto it = top.find(ours); it != top.end()) return prefix + it->second;
    static const std::map<std::string, std::string> per = {
        {"attn.q", "attention.self.query"},       {"attn.k", "attention.self.key"},
        {"attn.v", "attention.self.value"},       {"attn.out", "attention.output.dense"},
        {"attn_norm", "attention.output.LayerNorm"}, {"ffn_norm", "output.LayerNorm"},
        {"ffn.up", "intermediate.dense"},         {"ffn.down", "output.dense"}};
    if (std::regex_match(ours, m, layer)) {
      const std::string rest = m[2].str();
      const size_t dot = rest.rfind('.');
      return prefix + "encoder.layer." + m[1].str() + "." + per.at(rest.substr(0, dot)) + rest.substr(dot);
    }
  }
  throw std::logic_error("hf_encoder_name: no mapping for " + ours);
}

EncoderAct activation(const hf::Checkpoint& ck, const char* key) {
  const std::string a = ck.get_string(key, "gelu");
  if (a == "gelu") return EncoderAct::GeluErf;
  if (a == "gelu_new" || a == "gelu_pytorch_tanh") return EncoderAct::GeluTanh;
  if (a == "relu") return EncoderAct::Relu;
  throw InputError(ck.config_path(), fmt::format("\"{}\" '{}' is not supported (gelu, gelu_new, relu)", key, a));
}

EncoderConfig config_from(const hf::Checkpoint& ck, EncoderFamily f) {
  EncoderConfig c;
  c.family = f;
  c.name = ck.dir().filename().string();
  if (c.name.empty()) c.name = ck.dir().parent_path().filename().string();
  if (f == EncoderFamily::DistilBert) {
    c.dim = ck.get_int("dim", 1, 1 << 15);
    c.heads = ck.get_int("n_heads", 1, 1024);
    c.layers = ck.get_int("n_layers", 1, 1024);
    c.ffn = ck.get_int("hidden_dim", 1, 1 << 17);
    c.vocab = ck.get_int("vocab_size", 1, 1 << 22);
    c.positions = ck.get_int("max_position_embeddings", 1, 1 << 16);
    c.act = activation(ck, "activation");
    if (ck.get_bool("sinusoidal_pos_embds", false))
      throw InputError(ck.config_path(), "sinusoidal_pos_embds is not supported (learned positions only)");
    c.norm_eps = 1e-12f;
  } else {
    c.dim = ck.get_int("hidden_size", 1, 1 << 15);
    c.heads = ck.get_int("num_attention_heads", 1, 1024);
    c.layers = ck.get_int("num_hidden_layers", 1, 1024);
    c.ffn = ck.get_int("intermediate_size", 1, 1 << 17);
    c.act = activation(ck, "hidden_act");
    c.norm_eps = static_cast<float>(ck.get_float("layer_norm_eps", 1e-12));
    const std::string pet = ck.get_string("position_embedding_type", "absolute");
    if (pet != "absolute")
      throw InputError(ck.config_path(), fmt::format("position_embedding_type '{}' is not supported (absolute)", pet));
    if (f == EncoderFamily::Vit) {
      c.pre_norm = true;
      c.image_size = ck.get_int("image_size", 1, 4096);
      c.patch_size = ck.get_int("patch_size", 1, 4096);
      c.channels = ck.get_int("num_channels", 1, 4, 3);
      if (c.patch_size > c.image_size || c.image_size % c.patch_size != 0)
        throw InputError(ck.config_path(), fmt::format("image_size {} is not a multiple of patch_size {}", c.image_size, c.patch_size));
      c.positions = c.grid() * c.grid() + 1;
      if (!ck.get_bool("qkv_bias", true)) throw InputError(ck.config_path(), "qkv_bias false is not supported");
    } else {
      c.vocab = ck.get_int("vocab_size", 1, 1 << 22);
      c.positions = ck.get_int("max_position_embeddings", 1, 1 << 16);
      c.type_vocab = ck.get_int("type_vocab_size", 0, 1024, 2);
      // RoBERTa numbers positions from padding_idx + 1 (fairseq's make_positions).
      if (f == EncoderFamily::Roberta) c.position_offset = ck.get_int("pad_token_id", 0, 1 << 16, 1) + 1;
    }
  }
  return c;
}

std::vector<std::string> id2label(const hf::Checkpoint& ck, int& labels) {
  const auto& j = ck.config();
  if (!j.contains("id2label") || !j["id2label"].is_object()) return {};
  std::vector<std::string> names(j["id2label"].size());
  for (auto it = j["id2label"].begin(); it != j["id2label"].end(); ++it) {
    long id = -1;
    try {
      size_t used = 0;
      id = std::stol(it.key(), &used);
      if (used != it.key().size()) id = -1;
    } catch (const std::exception&) {
    }
    if (id < 0 || id >= static_cast<long>(names.size()) || !it->is_string())
      throw InputError(ck.config_path(), fmt::format("id2label entry \"{}\" is not a label id 0..{}", it.key(), names.size() - 1));
    names[id] = it->get<std::string>();
  }
  labels = static_cast<int>(names.size());
  return names;
}

void read_preprocessor(const fs::path& dir, LoadedEncoder& out, const EncoderConfig& cfg) {
  const fs::path p = dir / "preprocessor_config.json";
  if (!fs::exists(p)) return;   // ViTImageProcessor defaults: resize, 1/255, mean = std = 0.5
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(p));
  } catch (const nlohmann::json::exception& e) {
    throw InputError(p.string(), fmt::format("not valid JSON ({})", e.what()));
  }
  if (!j.is_object()) throw InputError(p.string(), "not a JSON object");
  auto vec3 = [&](const char* key, std::vector<float>& dst) {
    if (!j.contains(key) || j[key].is_null()) return;
    const auto& v = j[key];
    std::vector<float> r;
    if (v.is_number()) r.assign(cfg.channels, v.get<float>());
    else if (v.is_array() && static_cast<int>(v.size()) == cfg.channels)
      for (const auto& x : v) {
        if (!x.is_number()) throw InputError(p.string(), fmt::format("\"{}\" has a non-number", key));
        r.push_back(x.get<float>());
      }
    else throw InputError(p.string(), fmt::format("\"{}\" must be a number or {} numbers", key, cfg.channels));
    dst = r;
  };
  vec3("image_mean", out.mean);
  vec3("image_std", out.std);
  for (float s : out.std)
    if (!(s > 0)) throw InputError(p.string(), "image_std must be positive");
  if (j.contains("rescale_factor") && j["rescale_factor"].is_number()) out.rescale = j["rescale_factor"].get<float>();
  if (j.contains("do_rescale") && j["do_rescale"].is_boolean() && !j["do_rescale"].get<bool>()) out.rescale = 1.f;
  if (j.contains("do_normalize") && j["do_normalize"].is_boolean()) out.do_normalize = j["do_normalize"].get<bool>();
  if (j.contains("do_resize") && j["do_resize"].is_boolean()) out.do_resize = j["do_resize"].get<bool>();
  if (j.contains("size") && j["size"].is_object()) {
    const auto& s = j["size"];
    const auto side = [&](const char* key, int fallback) {
      if (!s.contains(key)) return fallback;
      if (!s[key].is_number_integer()) throw InputError(p.string(), fmt::format("size.{} must be a whole number", key));
      return s[key].get<int>();
    };
    const int h = side("height", side("shortest_edge", cfg.image_size)), w = side("width", h);
    if (h != cfg.image_size || w != cfg.image_size)
      throw InputError(p.string(), fmt::format("size {}x{} differs from the model's image_size {}", h, w, cfg.image_size));
  }
}

}  // namespace

LoadedEncoder load_encoder_hf(const fs::path& dir) {
  const hf::Checkpoint ck = hf::Checkpoint::open(dir);
  const std::string mt = ck.get_string("model_type", "");
  EncoderFamily f;
  if (mt == "bert") f = EncoderFamily::Bert;
  else if (mt == "roberta") f = EncoderFamily::Roberta;
  else if (mt == "distilbert") f = EncoderFamily::DistilBert;
  else if (mt == "vit") f = EncoderFamily::Vit;
  else
    throw InputError(ck.config_path(), fmt::format("model_type '{}' is not an encoder this tool runs (bert, roberta, distilbert, vit)", mt));
  EncoderConfig cfg = config_from(ck, f);
  LoadedEncoder out;
  // The family prefix ("bert.", "roberta.", "distilbert.", "vit.") when the checkpoint has a head.
  std::string prefix;
  const std::string probe = f == EncoderFamily::Vit ? "embeddings.cls_token" : "embeddings.word_embeddings.weight";
  if (ck.find(mt + "." + probe)) prefix = mt + ".";
  if (f == EncoderFamily::Vit) {
    out.label_names = id2label(ck, cfg.labels);
    if (cfg.labels == 0 && ck.find("classifier.weight") && ck.find("classifier.weight")->info.shape.size() == 2)
      cfg.labels = static_cast<int>(std::min<std::int64_t>(ck.find("classifier.weight")->info.shape[0], 1 << 20));
  } else if (!prefix.empty()) {
    // A sequence-classification head (…ForSequenceClassification): its classifier's rows are the
    // labels; id2label names them when it has as many entries (configs of bare models carry a
    // default two-label map).
    const auto* cls = ck.find(hf_encoder_name(f, "classifier.weight", prefix));
    if (cls && ck.find(hf_encoder_name(f, "pooler.weight", prefix)) && cls->info.shape.size() == 2 && cls->info.shape[0] > 0) {
      cfg.labels = static_cast<int>(std::min<std::int64_t>(cls->info.shape[0], 1 << 20));
      cfg.head_relu = f == EncoderFamily::DistilBert;
      int named = 0;
      std::vector<std::string> names = id2label(ck, named);
      if (named == cfg.labels) out.label_names = std::move(names);
    }
  }
  cfg.validate(ck.config_path());

  std::vector<hf::Expect> expect;
  std::vector<std::pair<std::string, std::string>> plan;   // ours, theirs
  for (const auto& s : encoder_tensor_table(cfg)) {
    std::vector<std::int64_t> shape = s.shape;
    const std::string theirs = hf_encoder_name(f, s.name, prefix);
    if (s.name == "embeddings.patch.weight") shape = {cfg.dim, cfg.channels, cfg.patch_size, cfg.patch_size};
    if (s.name == "embeddings.cls") shape = {1, 1, cfg.dim};
    if (s.name == "embeddings.position" && f == EncoderFamily::Vit) shape = {1, cfg.positions, cfg.dim};
    expect.push_back({theirs, shape});
    plan.emplace_back(s.name, theirs);
  }
  // Heads and buffers a text encoder does not use: pooler, masked-LM / classifier heads (unless read
  // above as the classification head), position ids.
  const std::vector<std::string> ignore = f == EncoderFamily::Vit
                                              ? std::vector<std::string>{"pooler.", prefix + "pooler."}
                                              : std::vector<std::string>{prefix + "pooler.", "pooler.", "cls.", "lm_head.",
                                                                         "classifier.", "pre_classifier.", "qa_outputs.",
                                                                         "vocab_transform.", "vocab_layer_norm.",
                                                                         "vocab_projector.", "position_ids"};
  ck.check(expect, ignore, mt);
  out.model = std::make_unique<EncoderModel>(cfg);
  for (const auto& [ours, theirs] : plan) {
    Mat& dst = out.model->weight(ours);
    dst = ck.read(theirs, dst.rows(), dst.cols());
  }
  if (f == EncoderFamily::Vit) {
    read_preprocessor(dir, out, cfg);
  } else if (f == EncoderFamily::Roberta) {
    if (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt")) {
      LmVocab v = read_gpt2_vocab(dir / "vocab.json", dir / "merges.txt", {});
      for (size_t i = 0; i < v.tokens.size(); ++i) {
        if (v.tokens[i] == "<s>") out.bos = static_cast<int>(i);
        if (v.tokens[i] == "</s>") out.eos = static_cast<int>(i);
      }
      out.bpe = std::make_shared<const LmTokenizer>(std::move(v));
    }
  } else if (fs::exists(dir / "vocab.txt") || fs::exists(dir / "tokenizer.json")) {
    out.wordpiece = std::make_shared<const WordPieceTokenizer>(read_wordpiece(dir));
    if (out.wordpiece->size() > cfg.vocab)
      throw InputError((dir / "vocab.txt").string(), fmt::format("{} tokens but the model's vocab_size is {}", out.wordpiece->size(), cfg.vocab));
  }
  return out;
}

}  // namespace attnviz::models
