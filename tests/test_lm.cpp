// Decoder LMs without the shared models: the tiny GGUF fixtures against their numpy reference
// (logits and every layer's attention), KV-cache decoding against prefill, recording never changing
// the numbers, sampling determinism, record-size refusal, and malformed checkpoints.
#include <doctest/doctest.h>

#include "test_util.hpp"

#include <attnviz/error.hpp>
#include <attnviz/io/npy.hpp>
#include <attnviz/models/lm.hpp>
#include <attnviz/render/plots.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <map>
#include <sstream>
#include <variant>

using namespace attnviz;
using namespace attnviz::models;
namespace fs = std::filesystem;
using attnviz::test::run_cli;
using attnviz::test::slurp;
using attnviz::test::spit;

namespace {

struct KeepSink : AttentionSink {
  std::map<std::string, nn::AttentionWeights> w;
  std::map<std::string, std::vector<int>> offsets;
  void weights(const std::string& name, nn::AttentionWeights&& x, int q0) override {
    w[name] = x;
    offsets[name].push_back(q0);
  }
};

fs::path fixture(const std::string& name) { return attnviz::test::source_dir() / "tests" / "data" / "gguf" / name; }

NpyArray npy(const fs::path& p) { return parse_npy(slurp(p), p.string()); }

LmConfig tiny_llama() {
  LmConfig c;
  c.arch = LmArch::Llama;
  c.name = "tiny";
  c.layers = 2; c.dim = 32; c.heads = 4; c.kv_heads = 2; c.head_dim = 8; c.ffn = 48; c.vocab = 40; c.context = 64;
  return c;
}

}  // namespace

TEST_CASE("GGUF fixtures: logits and every layer's attention match the numpy reference") {
  const std::vector<int> ids = {1, 5, 9, 2, 17, 30, 3, 11, 4, 25};
  const int T = static_cast<int>(ids.size());
  for (const char* name : {"llama_mha_f32", "llama_gqa4_f16_untied", "llama_qkvbias_q8_0_ropelinear",
                           "llama_q4_0_untied", "gpt2_tiny", "llama_kquant_mixed"}) {
    CAPTURE(name);
    LoadedLm lm = load_lm(fixture(std::string(name) + ".gguf"));
    const LmModel& m = *lm.model;
    const NpyArray logits = npy(fixture(std::string(name) + ".logits.npy"));
    const NpyArray attn = npy(fixture(std::string(name) + ".attn.npy"));
    const int V = m.config().vocab, H = m.config().heads, L = m.config().layers;
    REQUIRE(logits.shape == std::vector<std::int64_t>{T, V});
    REQUIRE(attn.shape == std::vector<std::int64_t>{L, H, T, T});
    LmCache cache = m.new_cache(T);
    KeepSink sink;
    LmForwardOptions o;
    o.all_logits = true;
    const Mat& lg = m.forward(ids, cache, &sink, o);
    double lmax = 0, scale = 0, amax = 0;
    for (int i = 0; i < T * V; ++i) {
      lmax = std::max(lmax, std::abs(double(lg.data()[i]) - logits.values[i]));
      scale = std::max(scale, std::abs(double(logits.values[i])));
    }
    CHECK(lmax <= 1e-5 * std::max(1.0, scale));
    for (int l = 0; l < L; ++l) {
      const auto& w = sink.w.at("decoder.layer" + std::to_string(l) + ".self");
      for (size_t i = 0; i < w.data.size(); ++i)
        amax = std::max(amax, std::abs(double(w.data[i]) - attn.values[static_cast<size_t>(l) * H * T * T + i]));
    }
    CHECK(amax < 1e-5);
    // Generation path: prefill 4 tokens, then decode the rest one at a time; same last logits.
    LmCache c2 = m.new_cache(T);
    m.forward(std::vector<int>(ids.begin(), ids.begin() + 4), c2);
    const Mat* last = nullptr;
    for (int t = 4; t < T; ++t) last = &m.forward({ids[t]}, c2);
    double dmax = 0;
    for (int v = 0; v < V; ++v) dmax = std::max(dmax, std::abs(double((*last)(0, v)) - logits.values[(T - 1) * V + v]));
    CHECK(dmax <= 1e-5 * std::max(1.0, scale));
  }
}

TEST_CASE("KV cache: decoding token by token gives prefill's logits and weights; the sink changes nothing") {
  LmModel m(tiny_llama());
  m.init_random(3, 0.2f);
  const std::vector<int> ids = {1, 7, 3, 22, 39, 5, 5, 12, 0, 31, 8};
  const int T = static_cast<int>(ids.size());
  LmCache a = m.new_cache(T);
  KeepSink sa;
  LmForwardOptions all;
  all.all_logits = true;
  const Mat prefill = m.forward(ids, a, &sa, all);
  LmCache b = m.new_cache(T);
  KeepSink sb;
  for (int t = 0; t < T; ++t) {
    const Mat& lg = m.forward({ids[t]}, b, &sb);
    CHECK((lg - prefill.row(t)).cwiseAbs().maxCoeff() < 1e-5);
  }
  // The last step's weights row equals prefill's last query row, for every head.
  const auto& wp = sa.w.at("decoder.layer1.self");
  const auto& wd = sb.w.at("decoder.layer1.self");
  REQUIRE(wd.Nq == 1);
  REQUIRE(wd.Nk == T);
  CHECK(sb.offsets.at("decoder.layer1.self").back() == T - 1);
  for (int h = 0; h < m.config().heads; ++h)
    for (int j = 0; j < T; ++j) CHECK(wd.at(0, h)[j] == doctest::Approx(wp.at(0, h)[(T - 1) * T + j]).epsilon(1e-5));
  // Causal rows sum to one, nothing above the diagonal.
  for (int h = 0; h < m.config().heads; ++h)
    for (int i = 0; i < T; ++i) {
      double s = 0;
      for (int j = 0; j < T; ++j) {
        s += wp.at(0, h)[i * T + j];
        if (j > i) CHECK(wp.at(0, h)[i * T + j] == 0.f);
      }
      CHECK(s == doctest::Approx(1.0).epsilon(1e-5));
    }
  // Without a sink: bitwise the same logits.
  LmCache c = m.new_cache(T);
  const Mat nosink = m.forward(ids, c, nullptr, all);
  CHECK((nosink - prefill).cwiseAbs().maxCoeff() == 0.f);
  // Capacity and vocabulary are checked.
  CHECK_THROWS_AS(m.forward({1}, c), UsageError);
  LmCache d = m.new_cache(4);
  CHECK_THROWS_AS(m.forward({1, 40}, d), InputError);
  CHECK_THROWS_AS(m.new_cache(65), UsageError);
}

TEST_CASE("generate: greedy and seeded sampling are deterministic; the record covers every token") {
  LmModel m(tiny_llama());
  m.init_random(5, 0.3f);
  GenerateOptions g;
  g.prompt = {1, 4, 9};
  g.steps = 12;
  g.record = true;
  const GenerateResult a = generate(m, g);
  const GenerateResult b = generate(m, g);
  CHECK(a.ids == b.ids);
  CHECK(a.ids.size() == 15);
  REQUIRE(a.record);
  CHECK(a.record->tensors.size() == 2);
  CHECK(a.record->tensors[0].name == "decoder.layer0.self");
  CHECK(a.record->tensors[0].heads == 4);
  CHECK(a.record->tensors[0].queries == 15);
  CHECK(a.record->metadata.at("causal") == "true");
  CHECK(nlohmann::json::parse(a.record->metadata.at("token_ids")).get<std::vector<int>>() == a.ids);
  // Every query row of every head sums to 1 (the prefill rows and each generated token's row).
  for (const auto& t : a.record->tensors)
    for (int h = 0; h < t.heads; ++h)
      for (int i = 0; i < t.queries; ++i) {
        double s = 0;
        for (int j = 0; j < t.keys; ++j) s += t.at(h, i, j);
        CHECK(s == doctest::Approx(1.0).epsilon(1e-5));
      }
  // The record equals a prefill over the same tokens.
  LmCache c = m.new_cache(15);
  KeepSink sink;
  m.forward(a.ids, c, &sink);
  const auto& w = sink.w.at("decoder.layer1.self");
  double d = 0;
  for (size_t i = 0; i < w.data.size(); ++i) d = std::max(d, std::abs(double(w.data[i]) - a.record->tensors[1].data[i]));
  CHECK(d < 1e-5);
  // Sampling: same seed same tokens, another seed (very likely) others; greedy ignores the seed.
  g.record = false;
  g.sampler.temperature = 1.0f;
  g.sampler.top_k = 10;
  g.seed = 42;
  const auto s1 = generate(m, g), s2 = generate(m, g);
  CHECK(s1.ids == s2.ids);
  g.seed = 43;
  const auto s3 = generate(m, g);
  g.seed = 44;
  const auto s4 = generate(m, g);
  CHECK((s3.ids != s1.ids || s4.ids != s1.ids));
  // Prefill only.
  g.steps = 0;
  g.record = true;
  const auto p = generate(m, g);
  CHECK(p.ids == g.prompt);
  CHECK(p.record->tensors[0].queries == 3);
}

TEST_CASE("record size is refused before computing; beyond the context too") {
  LmConfig c = tiny_llama();
  CHECK(lm_record_bytes(c, 100) == 2ull * 4 * 100 * 100 * 4);
  CHECK_NOTHROW(check_record_size(c, 64, 1.0));
  CHECK_THROWS_AS(check_record_size(c, 512, 1.0), UsageError);
  LmModel m(c);
  GenerateOptions g;
  g.prompt = {1};
  g.steps = 60;
  g.record = true;
  g.max_record_mib = 0.01;
  CHECK_THROWS_AS(generate(m, g), UsageError);
  g.steps = 65;   // 1 + 65 - 1 = 65 positions > 64
  g.record = false;
  CHECK_THROWS_AS(generate(m, g), UsageError);
}

TEST_CASE("generate: forward_last runs one decode step per generated token; the tokens are the same") {
  LmModel m(tiny_llama());
  m.init_random(5, 0.3f);
  GenerateOptions g;
  g.prompt = {1, 4, 9};
  for (int steps : {1, 2, 7}) {
    CAPTURE(steps);
    g.steps = steps;
    g.forward_last = false;
    const GenerateResult a = generate(m, g);
    CHECK(a.decoded == steps - 1);   // the first token comes from the prefill's logits
    g.forward_last = true;
    const GenerateResult b = generate(m, g);
    CHECK(b.decoded == steps);
    CHECK(b.ids == a.ids);
  }
  // The last token's step needs its position in the context: 1 + 64 positions do not fit in 64.
  g.prompt = {1};
  g.steps = 64;
  g.forward_last = false;
  CHECK_NOTHROW(generate(m, g));
  g.forward_last = true;
  CHECK_THROWS_AS(generate(m, g), UsageError);
}

// `bench lm` on the SmolLM2-135M shape (random weights, 0.5 GB) with the smallest settings: the
// generation rows time --steps decode steps, so --steps 1 gives one step's rate, not "0 tokens/s".
TEST_CASE("CLI: bench lm --steps 1 prints the rate of its one decode step; --steps 0 is a usage error") {
  const std::string args = "--threads 1 bench lm --sizes 4 --prompt 1 --steps 1 --no-q8 --min-seconds 0 --stories '" +
                           (attnviz::test::temp_dir("bench_lm_steps") / "none.gguf").string() + "'";
  auto r = run_cli(args);
  INFO(r.out);
  REQUIRE(r.code == 0);
  int rows = 0;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("generate 1+1", 0) != 0) continue;
    CAPTURE(line);
    ++rows;
    std::istringstream in(line.substr(line.find("record") != std::string::npos ? line.find("record") + 6 : 12));
    double ms = 0, per_s = 0, gflops = 0;
    REQUIRE(static_cast<bool>(in >> ms >> per_s >> gflops));
    CHECK(ms > 0);
    CHECK(per_s > 0);
    CHECK(gflops > 0);   // the step's matmuls are counted too
    // ms is printed with one decimal, tokens/s rounded: tokens/s = 1 token / (ms / 1000).
    CHECK(std::abs(per_s - 1e3 / ms) <= 0.5 + 0.01 * per_s);
  }
  CHECK(rows == 2);   // without and with recording
  r = run_cli("bench lm --steps 0");
  CHECK(r.code == 1);
  CHECK(r.out.find("--steps") != std::string::npos);
}

TEST_CASE("CLI: generate --steps 1 says no decode step was timed instead of \"0 tokens/s\"") {
  const fs::path hf = attnviz::test::source_dir() / "tests" / "data" / "hf" / "gpt2-tiny";
  auto r = run_cli("generate --model '" + hf.string() + "' --prompt 'Hello the cat' --steps 1 --temperature 0");
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("1 tokens generated") != std::string::npos);
  CHECK(r.out.find("no decode step to time") != std::string::npos);
  CHECK(r.out.find(" 0 tokens/s") == std::string::npos);
  CHECK(r.out.find("(0 tokens/s)") == std::string::npos);
  r = run_cli("generate --model '" + hf.string() + "' --prompt 'Hello the cat' --steps 3 --temperature 0");
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("2 decode steps in") != std::string::npos);
}

TEST_CASE("sampling: greedy takes the first maximum; top-k 1 is greedy") {
  const float logits[5] = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f};
  nn::Rng rng(1);
  std::vector<std::pair<float, int>> scratch;
  CHECK(sample_token(logits, 5, {0.f, 0}, rng, scratch) == 1);
  for (int i = 0; i < 20; ++i) CHECK(sample_token(logits, 5, {1.0f, 1}, rng, scratch) == 1);
  int counts[5] = {};
  for (int i = 0; i < 2000; ++i) ++counts[sample_token(logits, 5, {1.0f, 2}, rng, scratch)];
  CHECK(counts[0] + counts[2] + counts[4] == 0);
  CHECK(counts[1] > 800);
  CHECK(counts[3] > 800);
}

TEST_CASE("malformed checkpoints: exit 2, one line naming the file and the problem, nothing written") {
  const fs::path dir = attnviz::test::temp_dir("lm_malformed");
  const std::string good = slurp(fixture("llama_mha_f32.gguf"));
  auto expect_fail = [&](const std::string& fname, const std::string& bytes, const std::string& needle) {
    CAPTURE(fname);
    const fs::path p = dir / fname;
    spit(p, bytes);
    const fs::path out = dir / "out.safetensors";
    const auto r = run_cli("generate --model '" + p.string() + "' --steps 2 -o '" + out.string() + "'");
    CHECK(r.code == 2);
    CHECK(r.out.find(p.string()) != std::string::npos);
    CHECK(r.out.find(needle) != std::string::npos);
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
    CHECK(!fs::exists(out));
    fs::remove(p);
  };
  // GGUF: a tensor renamed (missing), a shape changed (ne[0] of blk.0.attn_k.weight), truncated.
  {
    std::string b = good;
    const size_t at = b.find("blk.1.ffn_down.weight");
    REQUIRE(at != std::string::npos);
    b[at + 6] = 'X';   // "blk.1.fXn_down.weight"
    expect_fail("missing.gguf", b, "missing tensor 'blk.1.ffn_down.weight'");
  }
  {
    std::string b = good;
    const size_t at = b.find("blk.0.attn_k.weight");
    REQUIRE(at != std::string::npos);
    // name, then u32 n_dims, then u64 ne[0]: make ne[0] 15 instead of 16 (data size shrinks, still in the file).
    const size_t ne0 = at + std::string("blk.0.attn_k.weight").size() + 4;
    REQUIRE(static_cast<unsigned char>(b[ne0]) == 16);
    b[ne0] = 15;
    expect_fail("shape.gguf", b, "tensor 'blk.0.attn_k.weight': expected ne [16, 16], found [15, 16]");
  }
  expect_fail("truncated.gguf", good.substr(0, good.size() / 2), "truncated.gguf");
  // minGPT JSON: bad JSON, bad base64, wrong shape, a missing tensor.
  expect_fail("bad.json", "{\"transformer.wte.weight\": [1, 2", "not valid JSON");
  {
    // A complete 1-layer model (V 2, D 4, F 8, context 3) with one wrong shape.
    auto zeros = [](std::vector<int> shape) {
      size_t n = 1;
      for (int d : shape) n *= d;
      const std::string raw(n * 4, '\0');
      static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      std::string s;
      for (size_t i = 0; i < raw.size(); i += 3) {
        const unsigned v = (static_cast<unsigned char>(raw[i]) << 16) |
                           (i + 1 < raw.size() ? static_cast<unsigned char>(raw[i + 1]) << 8 : 0) |
                           (i + 2 < raw.size() ? static_cast<unsigned char>(raw[i + 2]) : 0);
        s += a[(v >> 18) & 63];
        s += a[(v >> 12) & 63];
        s += i + 1 < raw.size() ? a[(v >> 6) & 63] : '=';
        s += i + 2 < raw.size() ? a[v & 63] : '=';
      }
      return nlohmann::json{{"shape", shape}, {"dtype", "torch.float32"}, {"data", s}};
    };
    nlohmann::json j;
    j["config"] = {{"n_head", 2}};
    j["transformer.wte.weight"] = zeros({2, 4});
    j["transformer.wpe.weight"] = zeros({3, 4});
    for (const char* n : {"ln_1", "ln_2"}) {
      j[std::string("transformer.h.0.") + n + ".weight"] = zeros({4});
      j[std::string("transformer.h.0.") + n + ".bias"] = zeros({4});
    }
    j["transformer.h.0.attn.c_attn.weight"] = zeros({12, 4});
    j["transformer.h.0.attn.c_attn.bias"] = zeros({12});
    j["transformer.h.0.attn.c_proj.weight"] = zeros({4, 4});
    j["transformer.h.0.attn.c_proj.bias"] = zeros({4});
    j["transformer.h.0.attn.bias"] = zeros({1, 1, 3, 3});
    j["transformer.h.0.mlp.c_fc.weight"] = zeros({8, 4});
    j["transformer.h.0.mlp.c_fc.bias"] = zeros({8});
    j["transformer.h.0.mlp.c_proj.weight"] = zeros({4, 8});
    j["transformer.h.0.mlp.c_proj.bias"] = zeros({4});
    j["transformer.ln_f.weight"] = zeros({4});
    j["transformer.ln_f.bias"] = zeros({4});
    j["lm_head.weight"] = zeros({2, 4});
    // The well-formed file loads and runs (ids as the prompt: no tokenizer).
    const fs::path okp = dir / "ok.json";
    spit(okp, j.dump());
    const auto r = run_cli("generate --model '" + okp.string() + "' --prompt '1 0' --steps 1 --temperature 0");
    CHECK(r.code == 0);
    CHECK(r.out.find("1 0 ") != std::string::npos);
    CHECK(run_cli("generate --model '" + okp.string() + "' --prompt '1 x' --steps 1").code == 1);
    nlohmann::json bad = j;
    bad["transformer.h.0.mlp.c_proj.weight"] = zeros({4, 7});
    expect_fail("shape.json", bad.dump(), "tensor 'transformer.h.0.mlp.c_proj.weight': expected shape [4, 8], found [4, 7]");
    bad = j;
    bad["transformer.h.0.attn.c_proj.bias"]["data"] = "AA$AAAAAAAAAAAAAAAAAAA==";
    expect_fail("b64.json", bad.dump(), "tensor 'transformer.h.0.attn.c_proj.bias': invalid base64 character at position 2");
    bad = j;
    bad.erase("transformer.h.0.ln_2.bias");
    expect_fail("missing.json", bad.dump(), "missing tensor 'transformer.h.0.ln_2.bias'");
  }
}

TEST_CASE("render: a causal record's heatmap masks the upper triangle; lines --query draws one query") {
  LmModel m(tiny_llama());
  m.init_random(9, 0.3f);
  GenerateOptions g;
  g.prompt = {1, 4, 9, 12};
  g.steps = 4;
  g.record = true;
  const AttentionRecord rec = *generate(m, g).record;
  auto count = [](const render::DrawList& d, auto probe) {
    int n = 0;
    for (const auto& op : d.ops) n += std::holds_alternative<decltype(probe)>(op);
    return n;
  };
  const render::LabelledMatrix lm = render::select_matrix(rec, {"decoder.layer1.self", 2, false});
  CHECK(lm.causal);
  const render::DrawList causal = render::layout_heatmap(lm, {});
  render::LabelledMatrix plain = lm;
  plain.causal = false;
  const render::DrawList full = render::layout_heatmap(plain, {});
  // One staircase polygon of light gray over the masked cells.
  CHECK(count(causal, render::Polygon{}) == count(full, render::Polygon{}) + 1);
  // Without the metadata, an all-zero upper triangle is detected; a non-zero one is not causal.
  AttentionRecord r2 = rec;
  r2.metadata.erase("causal");
  CHECK(render::select_matrix(r2, {"decoder.layer0.self", 0, false}).causal);
  r2.tensors[0].at(0, 0, 3) = 0.1f;
  CHECK(!render::select_matrix(r2, {"decoder.layer0.self", 0, false}).causal);
  // lines: one query's lines only, and an out-of-range query is a usage error.
  render::LinesOptions lo;
  lo.heads = {0};
  lo.threshold = 0;
  const int all = count(render::layout_lines(rec, "decoder.layer0.self", lo), render::Line{});
  lo.query = 5;
  const int one = count(render::layout_lines(rec, "decoder.layer0.self", lo), render::Line{});
  CHECK(one <= 6);   // query 5 sees keys 0..5
  CHECK(one >= 1);
  CHECK(all > one);
  lo.query = 8;
  CHECK_THROWS_AS(render::layout_lines(rec, "decoder.layer0.self", lo), UsageError);
}

TEST_CASE("demo --only llm --model FILE: the LLM section on any model, heads found by measuring") {
  const auto dir = attnviz::test::temp_dir("demo_llm");
  const auto r = run_cli("demo --only llm --model '" + fixture("llama_gqa4_f16_untied.gguf").string() + "' --out '" +
                         dir.string() + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(r.out.find("== demo: llm") != std::string::npos);
  CHECK(r.out.find("== demo: mnist") == std::string::npos);  // --only: nothing else ran
  CHECK(r.out.find("previous-token head layer") != std::string::npos);
  for (const char* f : {"llm/story.safetensors", "llm/prev_token.png", "llm/bos.png", "llm/last_query.png", "index.html"})
    CHECK_MESSAGE(fs::file_size(dir / f) > 100, f);
  const std::string page = attnviz::test::slurp(dir / "index.html");
  CHECK(page.find("llm/prev_token.png") != std::string::npos);
  CHECK(page.find("highest of all heads") != std::string::npos);
  // A wrong --model is refused at once, before any section runs.
  const auto bad = run_cli("demo --model '" + (dir / "absent.gguf").string() + "' --out '" + dir.string() + "'");
  CHECK(bad.code == 2);
  CHECK(bad.out.find("absent.gguf") != std::string::npos);
  CHECK(bad.out.find("== demo:") == std::string::npos);
  CHECK(run_cli("demo --only nosuch --out '" + dir.string() + "'").code == 1);
}
