// Hugging Face directories: the tiny fixtures of scripts/make_hf_fixtures.py (random weights, real
// layouts and names) against the script's PyTorch reference; tokenizers; malformed directories.
#include <doctest/doctest.h>

#include "test_util.hpp"

#include <attnviz/data/image.hpp>
#include <attnviz/error.hpp>
#include <attnviz/io/safetensors.hpp>
#include <attnviz/models/encoder.hpp>
#include <attnviz/models/hf.hpp>
#include <attnviz/models/lm.hpp>
#include <attnviz/record/record.hpp>
#include <attnviz/text/hf_tokenizer.hpp>
#include <attnviz/text/lm_tokenizer.hpp>

#include <nlohmann/json.hpp>

#include <cmath>

using namespace attnviz;
using attnviz::test::run_cli;
namespace fs = std::filesystem;

namespace {

fs::path hf_dir(const std::string& name) { return test::source_dir() / "tests" / "data" / "hf" / name; }
StFile reference(const std::string& name) { return load_safetensors(hf_dir(name + ".ref.safetensors")); }

std::vector<int> ids_of(const StFile& ref, const char* key = "ids") {
  std::vector<int> ids;
  for (float f : ref.find(key)->data) ids.push_back(static_cast<int>(f));
  return ids;
}

double max_diff(const float* a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < b.size(); ++i) m = std::max(m, static_cast<double>(std::abs(a[i] - b[i])));
  return m;
}

// Every layer's weights [1, H, T, T] against the reference "attn.<L>" [H, T, T] within 1e-5.
void check_attention(const models::AttentionCollector& col, const StFile& ref, const std::string& stack, int layers) {
  for (int l = 0; l < layers; ++l) {
    const auto& w = col.w.at(stack + ".layer" + std::to_string(l) + ".self");
    const StTensor* r = ref.find("attn." + std::to_string(l));
    REQUIRE(r);
    REQUIRE(w.data.size() == r->data.size());
    const double d = max_diff(w.data.data(), r->data);
    INFO("layer " << l << " max |diff| " << d);
    CHECK(d < 1e-5);
  }
}

void check_lm(const std::string& name) {
  const models::LoadedLm lm = models::load_lm(hf_dir(name));
  const StFile ref = reference(name);
  const std::vector<int> ids = ids_of(ref);
  const auto& cfg = lm.model->config();
  models::LmCache cache = lm.model->new_cache(static_cast<int>(ids.size()));
  models::AttentionCollector col;
  models::LmForwardOptions opt;
  opt.all_logits = true;
  const Mat& logits = lm.model->forward(ids, cache, &col, opt);
  check_attention(col, ref, "decoder", cfg.layers);
  const StTensor* rl = ref.find("logits");
  REQUIRE(logits.size() == static_cast<Eigen::Index>(rl->data.size()));
  const double d = max_diff(logits.data(), rl->data);
  INFO("logits max |diff| " << d);
  CHECK(d < 1e-4);
  // The tokenizer of the directory gives the ids the script's own tokenizer gave.
  REQUIRE(lm.tokenizer);
  const std::string text = ref.metadata.at("text");
  const bool bos = !ids.empty() && ids[0] == lm.tokenizer->bos() && lm.tokenizer->model() == "llama";
  CHECK(lm.tokenizer->encode(text, bos) == ids);
}

// A copy of a fixture directory to break.
fs::path copy_fixture(const std::string& name, const std::string& as) {
  const fs::path d = test::temp_dir(as) / name;
  fs::copy(hf_dir(name), d, fs::copy_options::recursive);
  return d;
}

void edit_json(const fs::path& file, const std::function<void(nlohmann::json&)>& f) {
  nlohmann::json j = nlohmann::json::parse(test::slurp(file));
  f(j);
  test::spit(file, j.dump());
}

// The CLI refuses the directory: exit 2, one line naming `file` and containing `what`.
void refused(const fs::path& dir, const std::string& file, const std::string& what) {
  const auto r = run_cli("inspect '" + dir.string() + "'");
  INFO(r.out);
  CHECK(r.code == 2);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
  CHECK(r.out.find(file) != std::string::npos);
  CHECK(r.out.find(what) != std::string::npos);
}

}  // namespace

TEST_CASE("HF gpt2 directory matches the PyTorch reference (Conv1D weights, learned positions)") { check_lm("gpt2-tiny"); }
TEST_CASE("HF llama directory matches the PyTorch reference (rotate_half RoPE, GQA, untied)") { check_lm("llama-tiny"); }
TEST_CASE("HF qwen2-style directory: BF16 shards, q/k/v biases, tied output, linear RoPE scaling") {
  check_lm("llama-tiny-bf16-sharded");
}

namespace {
// Loads a text encoder directory and checks it against the PyTorch reference: attention, every
// layer's output, and the directory's tokenizer. Returns the encoder for further checks.
models::LoadedEncoder check_text_encoder(const std::string& name) {
  models::LoadedEncoder enc = models::load_encoder_hf(hf_dir(name));
  const StFile ref = reference(name);
  const std::vector<int> ids = ids_of(ref), types = ids_of(ref, "type_ids");
  models::AttentionCollector col;
  std::vector<Mat> layers;
  models::EncoderForwardOptions opt;
  opt.layer_outputs = &layers;
  const Mat h = enc.model->forward_tokens(ids, types, &col, opt);
  const int L = enc.model->config().layers;
  check_attention(col, ref, "encoder", L);
  for (int l = 0; l < L; ++l) CHECK(max_diff(layers[l].data(), ref.find("hidden." + std::to_string(l))->data) < 1e-4);
  CHECK(max_diff(h.data(), ref.find("hidden")->data) < 1e-4);
  // The directory's tokenizer gives the ids of the script's tokenizer (pair included).
  const std::string pair = ref.metadata.at("pair");
  const AttentionRecord r = models::record_encoder_text(enc, ref.metadata.at("text"), &pair);
  CHECK(nlohmann::json::parse(r.metadata.at("token_ids")).get<std::vector<int>>() == ids);
  return enc;
}
}  // namespace

TEST_CASE("HF bert directory matches the PyTorch reference (token types, post-LN, erf GELU)") {
  const models::LoadedEncoder enc = check_text_encoder("bert-tiny");
  const StFile ref = reference("bert-tiny");
  const std::vector<int> ids = ids_of(ref), types = ids_of(ref, "type_ids");
  // WordPiece with BERT's basic tokenization gives the script's tokens.
  REQUIRE(enc.wordpiece);
  const std::string pair = ref.metadata.at("pair");
  const Encoding e = enc.wordpiece->encode(ref.metadata.at("text"), &pair);
  CHECK(e.ids == ids);
  CHECK(e.type_ids == types);
  CHECK(nlohmann::json(e.tokens).dump() == nlohmann::json::parse(ref.metadata.at("tokens")).dump());
}

TEST_CASE("WordPiece: the documented examples") {
  WordPieceTokenizer t({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "want", "##ed", "runn", "##ing", ",",
                        "hello", "!", "日", "cafe"},
                       WordPieceOptions{});
  auto pieces = [&](const std::string& s) {
    std::vector<std::string> out;
    for (const auto& w : t.basic_tokens(s))
      for (int id : t.word_pieces(w)) out.push_back(t.token(id));
    return out;
  };
  CHECK(pieces("unaffable") == std::vector<std::string>{"un", "##aff", "##able"});
  CHECK(pieces("UNwant\u00E9d,running") == std::vector<std::string>{"[UNK]", ",", "runn", "##ing"});   // "unwanted": no "##t"
  CHECK(pieces("  Héllo!\t日本 CAFÉ") == std::vector<std::string>{"hello", "!", "日", "[UNK]", "cafe"});
  CHECK(t.basic_tokens("a\x01" "b $5") == std::vector<std::string>{"ab", "$", "5"});   // control dropped, ASCII symbol split
  WordPieceOptions cased;
  cased.lowercase = false;
  cased.strip_accents = false;
  WordPieceTokenizer c({"[UNK]", "[CLS]", "[SEP]"}, cased);
  CHECK(c.basic_tokens("Héllo, World") == std::vector<std::string>{"Héllo", ",", "World"});
}

TEST_CASE("GPT-2 byte-level BPE of the fixture: spaces and non-ASCII bytes") {
  const models::LoadedLm lm = models::load_lm(hf_dir("gpt2-tiny"));
  const LmTokenizer& t = *lm.tokenizer;
  std::vector<std::string> toks;
  for (int id : t.encode(" the Café", false)) toks.push_back(t.token(id));
  // A space joins the next word as 'Ġ'; é's two UTF-8 bytes C3 A9 are the code points 'Ã' and '©'.
  CHECK(toks == std::vector<std::string>{"Ġthe", "Ġ", "C", "a", "f", "Ã©"});
  CHECK(t.decode(t.encode(" the Café 日本", false)) == " the Café 日本");
}

TEST_CASE("CLI: generate and record encoder on HF directories write the reference weights") {
  const fs::path tmp = test::temp_dir("cli");
  {
    const auto r = run_cli("generate --model '" + hf_dir("gpt2-tiny").string() + "' --prompt 'Hello the cat' --steps 3 --temperature 0 -o '" +
                           (tmp / "g.safetensors").string() + "'");
    INFO(r.out);
    REQUIRE(r.code == 0);
    const AttentionRecord rec = load_record(tmp / "g.safetensors");
    CHECK(rec.find("decoder.layer1.self"));
    CHECK(rec.find("decoder.layer1.self")->heads == 2);
    CHECK(rec.metadata.at("architecture") == "gpt2");
  }
  {
    const StFile ref = reference("bert-tiny");
    const auto r = run_cli("record encoder --model '" + hf_dir("bert-tiny").string() + "' --text '" + ref.metadata.at("text") +
                           "' --text-pair '" + ref.metadata.at("pair") + "' -o '" + (tmp / "b.safetensors").string() + "'");
    INFO(r.out);
    REQUIRE(r.code == 0);
    const AttentionRecord rec = load_record(tmp / "b.safetensors");
    for (int l = 0; l < 2; ++l) {
      const AttentionTensor* t = rec.find("encoder.layer" + std::to_string(l) + ".self");
      REQUIRE(t);
      CHECK(t->heads == 2);
      CHECK(max_diff(t->data.data(), ref.find("attn." + std::to_string(l))->data) < 1e-5);
    }
    CHECK(nlohmann::json(rec.tokens.at("tokens")).dump() == nlohmann::json::parse(ref.metadata.at("tokens")).dump());
    CHECK(nlohmann::json::parse(rec.metadata.at("token_ids")).get<std::vector<int>>() == ids_of(ref));
    CHECK(rec.metadata.at("subwords") == "wordpiece");
  }
  {
    const auto r = run_cli("inspect '" + hf_dir("llama-tiny-bf16-sharded").string() + "'");
    INFO(r.out);
    CHECK(r.code == 0);
    CHECK(r.out.find("BF16") != std::string::npos);
    CHECK(r.out.find("tied output") != std::string::npos);
    // A decoder directory is not an encoder: a usage error naming the right command.
    CHECK(run_cli("record encoder --model '" + hf_dir("gpt2-tiny").string() + "' --text hi -o '" + (tmp / "x.safetensors").string() + "'").code == 1);
    CHECK(!fs::exists(tmp / "x.safetensors"));
  }
}

TEST_CASE("malformed HF directories: exit 2, one line naming the file and the problem") {
  {
    const fs::path d = copy_fixture("gpt2-tiny", "shape");
    edit_json(d / "config.json", [](nlohmann::json& j) { j["n_inner"] = 60; });
    refused(d, "model.safetensors", "tensor 'transformer.h.0.mlp.c_fc.weight': expected shape [16, 60], found [16, 64]");
  }
  {
    const fs::path d = copy_fixture("gpt2-tiny", "layers");
    edit_json(d / "config.json", [](nlohmann::json& j) { j["n_layer"] = 3; });
    refused(d, "model.safetensors", "missing tensor 'transformer.h.2.ln_1.weight'");
  }
  {
    const fs::path d = copy_fixture("llama-tiny", "extra");
    edit_json(d / "config.json", [](nlohmann::json& j) { j["num_hidden_layers"] = 1; });
    refused(d, "model.safetensors", "unexpected tensor 'model.layers.1.");
  }
  {
    const fs::path d = copy_fixture("bert-tiny", "badjson");
    test::spit(d / "config.json", "{\"model_type\": \"bert\", ");
    refused(d, "config.json", "not valid JSON");
  }
  {
    const fs::path d = copy_fixture("bert-tiny", "heads");
    edit_json(d / "config.json", [](nlohmann::json& j) { j["num_attention_heads"] = 3; });
    refused(d, "config.json", "not a multiple of 3 heads");
  }
  {
    const fs::path d = copy_fixture("bert-tiny", "trunc");
    const std::string bytes = test::slurp(d / "model.safetensors");
    test::spit(d / "model.safetensors", bytes.substr(0, bytes.size() - 100));
    refused(d, "model.safetensors", "past the end of the data");
  }
  {
    const fs::path d = copy_fixture("llama-tiny-bf16-sharded", "shard");
    fs::remove(d / "model-00002-of-00002.safetensors");
    refused(d, "model-00002-of-00002.safetensors", "missing");
  }
  {
    const fs::path d = copy_fixture("llama-tiny-bf16-sharded", "escape");
    edit_json(d / "model.safetensors.index.json",
              [](nlohmann::json& j) { j["weight_map"]["model.norm.weight"] = "../../etc/passwd"; });
    refused(d, "model.safetensors.index.json", "is not a file name in this folder");
  }
  {
    const fs::path d = copy_fixture("gpt2-tiny", "merges");
    test::spit(d / "merges.txt", "#version: 0.2\nĠ t\nthree parts here\n");
    refused(d, "merges.txt", "line 3");
  }
  {
    const fs::path d = copy_fixture("bert-tiny", "vocab");
    test::spit(d / "vocab.txt", "[PAD]\n[UNK]\nhello\n");
    refused(d, "vocab.txt", "no '[CLS]' token");
  }
  {
    const fs::path d = copy_fixture("llama-tiny", "nan");
    // A NaN weight: found when read, named.
    std::string bytes = test::slurp(d / "model.safetensors");
    const StFile h = read_safetensors_header(d / "model.safetensors");
    const StTensor* t = h.find("model.norm.weight");
    REQUIRE(t);
    const std::uint32_t nan = 0x7FC00000u;
    bytes.replace(t->file_offset, 4, reinterpret_cast<const char*>(&nan), 4);
    test::spit(d / "model.safetensors", bytes);
    refused(d, "model.safetensors", "tensor 'model.norm.weight': non-finite value at element 0");
  }
  {
    // Wrong-typed fields of the configs: named, not a json type_error without the file.
    const fs::path d = copy_fixture("llama-tiny", "ropetype");
    edit_json(d / "config.json", [](nlohmann::json& j) { j["rope_scaling"] = {{"rope_type", 3}, {"factor", 2.0}}; });
    refused(d, "config.json", "rope_scaling.rope_type must be a string");
  }
  {
    const fs::path d = copy_fixture("vit-tiny", "size");
    edit_json(d / "preprocessor_config.json", [](nlohmann::json& j) { j["size"] = {{"height", "16"}, {"width", 16}}; });
    refused(d, "preprocessor_config.json", "size.height must be a whole number");
  }
}


TEST_CASE("HF distilbert directory (a table difference: no token types, q_lin/sa_layer_norm names)") {
  check_text_encoder("distilbert-tiny");
}
TEST_CASE("HF roberta directory (positions from padding_idx + 1, byte-level BPE, <s> a </s></s> b </s>)") {
  check_text_encoder("roberta-tiny");
}

TEST_CASE("HF vit directory matches the PyTorch reference (patch convolution, CLS, pre-LN)") {
  const models::LoadedEncoder enc = models::load_encoder_hf(hf_dir("vit-tiny"));
  const StFile ref = reference("vit-tiny");
  const DecodedImage img = read_image(hf_dir("vit-tiny.ppm"));
  const std::vector<float> px = models::vit_preprocess(enc, img);
  CHECK(max_diff(px.data(), ref.find("pixels")->data) < 1e-5);
  models::AttentionCollector col;
  Mat hidden;
  const Mat logits = enc.model->forward_image(px, &col, {}, &hidden);
  check_attention(col, ref, "vit", enc.model->config().layers);
  CHECK(max_diff(hidden.data(), ref.find("hidden")->data) < 1e-4);
  CHECK(max_diff(logits.data(), ref.find("logits")->data) < 1e-4);
  // Shrinking 24 -> 16 pixels: PIL-style bilinear with antialiasing (torch's antialias=True is the
  // reference; attnviz rounds to 8 bits after each pass as PIL does): within one grey level.
  const DecodedImage big = read_image(hf_dir("vit-tiny-24.ppm"));
  const std::vector<float> small = models::vit_preprocess(enc, big);
  const auto& want = ref.find("resized")->data;   // [3, 16, 16] in 0..255
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const int ch = static_cast<int>(i / 256);
    const double v = (small[i] * enc.std[ch] + enc.mean[ch]) * 255.0;
    worst = std::max(worst, std::abs(v - want[i]));
  }
  INFO("resize max |diff| " << worst << " grey levels");
  CHECK(worst <= 1.0 + 1e-3);
}

TEST_CASE("CLI: record vit keeps the image and the patch grid; overlay renders it") {
  const fs::path tmp = test::temp_dir("vit");
  const auto r = run_cli("record vit --model '" + hf_dir("vit-tiny").string() + "' --image '" + hf_dir("vit-tiny.ppm").string() +
                         "' -o '" + (tmp / "v.safetensors").string() + "'");
  INFO(r.out);
  REQUIRE(r.code == 0);
  const AttentionRecord rec = load_record(tmp / "v.safetensors");
  REQUIRE(rec.image);
  CHECK(rec.image->patch_rows == 4);
  CHECK(rec.image->patch_cols == 4);
  CHECK(rec.image->prefix_tokens == 1);
  CHECK(rec.image->height == 16);
  CHECK(rec.tokens.at("tokens").size() == 17);
  const StFile ref = reference("vit-tiny");
  CHECK(max_diff(rec.find("vit.layer1.self")->data.data(), ref.find("attn.1")->data) < 1e-5);
  CHECK(rec.metadata.at("prediction").size() > 0);
  const auto o = run_cli("render overlay '" + (tmp / "v.safetensors").string() + "' --mean-heads -o '" + (tmp / "v.png").string() + "'");
  INFO(o.out);
  CHECK(o.code == 0);
  CHECK(fs::file_size(tmp / "v.png") > 100);
  // A file that is not an image: exit 2 naming it, nothing written.
  test::spit(tmp / "bad.png", "not an image");
  const auto b = run_cli("record vit --model '" + hf_dir("vit-tiny").string() + "' --image '" + (tmp / "bad.png").string() +
                         "' -o '" + (tmp / "w.safetensors").string() + "'");
  CHECK(b.code == 2);
  CHECK(b.out.find("bad.png") != std::string::npos);
  CHECK(!fs::exists(tmp / "w.safetensors"));
}

TEST_CASE("CLI: --merge-subwords on a BERT record reads per word") {
  const fs::path tmp = test::temp_dir("merge");
  const auto r = run_cli("record encoder --model '" + hf_dir("bert-tiny").string() + "' --text 'the unaffable dogs' -o '" +
                         (tmp / "b.safetensors").string() + "'");
  REQUIRE(r.code == 0);
  const auto i = run_cli("inspect '" + (tmp / "b.safetensors").string() + "' --merge-subwords");
  INFO(i.out);
  CHECK(i.code == 0);
  // [CLS] the un ##aff ##able dog ##s [SEP] -> [CLS] the unaffable dogs [SEP]: 5 x 5
  CHECK(i.out.find("unaffable") != std::string::npos);
  CHECK(i.out.find("[2, 5, 5]") != std::string::npos);
  const auto h = run_cli("render heatmap '" + (tmp / "b.safetensors").string() + "' --merge-subwords -o '" + (tmp / "h.png").string() + "'");
  CHECK(h.code == 0);
  CHECK(fs::exists(tmp / "h.png"));
}

TEST_CASE("WordPiece tokenizer.json without model.vocab: a message, not undefined behaviour (fuzz_tokenizer)") {
  const auto dir = attnviz::test::temp_dir("wp_no_vocab");
  attnviz::test::spit(dir / "tokenizer.json", R"({"model": {"type": "WordPiece"}})");
  CHECK_THROWS_WITH_AS(attnviz::read_wordpiece(dir), doctest::Contains("tokenizer.json: model needs a \"vocab\" object"),
                       attnviz::InputError);
}

TEST_CASE("tokenizer.json fields of the wrong type: a message naming the key, not a json type_error (fuzz_tokenizer)") {
  const auto dir = attnviz::test::temp_dir("wp_bad_type");
  attnviz::test::spit(dir / "tokenizer.json", R"({"model": {"type": true}})");
  CHECK_THROWS_WITH_AS(attnviz::read_wordpiece(dir), doctest::Contains("\"type\" must be a string"), attnviz::InputError);
}
