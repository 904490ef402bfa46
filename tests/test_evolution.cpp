// Tests of attention over training (issue 16 item 6): snapshots taken while a tiny ViT trains
// (count, steps, and training unchanged bit for bit), frames on one colour scale, and the animated
// WebP / GIF files (frame count and canvas size read back from the containers by hand), plus the
// `render evolution` CLI.
#include <attnviz/analysis/saliency.hpp>
#include <attnviz/error.hpp>
#include <attnviz/data/corpus.hpp>
#include <attnviz/io/safetensors.hpp>
#include <attnviz/models/mnist.hpp>
#include <attnviz/render/animation.hpp>
#include <attnviz/render/render.hpp>
#include <attnviz/train/snapshots.hpp>
#include <attnviz/train/tasks.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "test_util.hpp"

using namespace attnviz;
using namespace attnviz::test;

namespace {

// 64 random 28x28 "digits" with labels 0..9: enough for a few optimizer steps.
ImageSet random_images(int n) {
  ImageSet s;
  s.count = n, s.rows = s.cols = 28;
  nn::Rng rng(5);
  for (int i = 0; i < n * 28 * 28; ++i) s.pixels.push_back(rng.uniform());
  for (int i = 0; i < n; ++i) s.labels.push_back(i % 10);
  return s;
}

models::MnistConfig tiny_vit() {
  models::MnistConfig c;
  c.patch = 7, c.dim = 16, c.depth = 2, c.heads = 2, c.mlp = 32;
  return c;
}

std::uint32_t le32(const std::string& b, size_t at) {
  return static_cast<unsigned char>(b[at]) | static_cast<unsigned char>(b[at + 1]) << 8 |
         static_cast<unsigned char>(b[at + 2]) << 16 | static_cast<std::uint32_t>(static_cast<unsigned char>(b[at + 3])) << 24;
}
std::uint32_t le24(const std::string& b, size_t at) {
  return static_cast<unsigned char>(b[at]) | static_cast<unsigned char>(b[at + 1]) << 8 |
         static_cast<unsigned char>(b[at + 2]) << 16;
}

// Animated WebP (RIFF): canvas size from VP8X, frames = ANMF chunks, loop from ANIM.
struct WebpInfo {
  int width = 0, height = 0, frames = 0;
  bool animated = false;
};
WebpInfo read_webp(const std::string& b) {
  WebpInfo w;
  REQUIRE(b.size() > 30);
  REQUIRE(b.compare(0, 4, "RIFF") == 0);
  REQUIRE(b.compare(8, 4, "WEBP") == 0);
  CHECK(le32(b, 4) + 8 == b.size());
  for (size_t at = 12; at + 8 <= b.size();) {
    const std::string tag = b.substr(at, 4);
    const std::uint32_t len = le32(b, at + 4);
    if (tag == "VP8X") {
      w.animated = (static_cast<unsigned char>(b[at + 8]) & 0x02) != 0;
      w.width = static_cast<int>(le24(b, at + 12)) + 1;
      w.height = static_cast<int>(le24(b, at + 15)) + 1;
    }
    if (tag == "ANMF") ++w.frames;
    at += 8 + len + (len & 1);
  }
  return w;
}

// GIF: logical screen size and the number of image descriptors, walking the block structure.
struct GifInfo {
  int width = 0, height = 0, frames = 0;
};
GifInfo read_gif(const std::string& b) {
  GifInfo g;
  REQUIRE(b.compare(0, 6, "GIF89a") == 0);
  g.width = static_cast<unsigned char>(b[6]) | static_cast<unsigned char>(b[7]) << 8;
  g.height = static_cast<unsigned char>(b[8]) | static_cast<unsigned char>(b[9]) << 8;
  size_t at = 13;
  const unsigned char flags = b[10];
  if (flags & 0x80) at += 3u << ((flags & 7) + 1);
  auto skip_sub_blocks = [&] {
    while (at < b.size() && b[at] != 0) at += 1 + static_cast<unsigned char>(b[at]);
    ++at;
  };
  while (at < b.size()) {
    const unsigned char c = b[at];
    if (c == 0x3B) break;   // trailer
    if (c == 0x21) {        // extension: label, sub-blocks
      at += 2;
      skip_sub_blocks();
    } else if (c == 0x2C) { // image descriptor, optional local colour table, LZW data
      ++g.frames;
      const unsigned char f = b[at + 9];
      at += 10;
      if (f & 0x80) at += 3u << ((f & 7) + 1);
      ++at;   // LZW minimum code size
      skip_sub_blocks();
    } else {
      FAIL("bad GIF block");
      break;
    }
  }
  return g;
}

}  // namespace

TEST_CASE("snapshots while a tiny ViT trains: count, steps, and the training is unchanged") {
  ImageSet train = random_images(64), none;
  train::MnistTrainOptions opt;
  opt.epochs = 2, opt.batch = 16;   // 4 steps per epoch, 8 in all
  auto plain = models::make_mnist_model(tiny_vit(), 3);
  train::train_mnist(*plain, train, none, opt);

  auto model = models::make_mnist_model(tiny_vit(), 3);
  std::vector<AttentionRecord> snaps;
  models::MnistModel* m = model.get();
  auto cb = train::with_snapshots({}, 3, [&] { return models::record_mnist(*m, train, {5})[0]; }, &snaps);
  train::train_mnist(*model, train, none, opt, cb);
  REQUIRE(snaps.size() == 3);   // step 0, 3, 6
  CHECK(snaps[0].metadata.at("step") == "0");
  CHECK(snaps[0].metadata.at("epoch") == "0");   // taken before training (it said "1")
  CHECK(render::evolution_frame_title(snaps[0], 0) == "step 0 · before training");
  CHECK(render::evolution_frame_title(snaps[2], 2) == "step 6 · epoch 2");
  CHECK(snaps[1].metadata.at("step") == "3");
  CHECK(snaps[2].metadata.at("step") == "6");
  CHECK(snaps[2].metadata.at("epoch") == "2");
  CHECK(snaps[2].metadata.at("snapshot") == "2");
  CHECK(snaps[0].image.has_value());
  // The snapshots changed nothing: the same parameters, bit for bit.
  const auto& pa = plain->params().params();
  const auto& pb = model->params().params();
  REQUIRE(pa.size() == pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    const Mat& a = pa[i]->value;
    const Mat& b = pb[i]->value;
    REQUIRE(a.size() == b.size());
    CHECK(std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0);
  }
  // Attention moved during training (the frames are not all the same picture).
  CHECK(snaps[0].tensors[0].data != snaps[2].tensors[0].data);
  CHECK_THROWS_AS(train::with_snapshots({}, 0, [] { return AttentionRecord{}; }, &snaps), UsageError);

  // Frames -> animated WebP and GIF: frame count and canvas size read back from the files.
  auto frames = render::evolution_frames(snaps, {});
  REQUIRE(frames.size() == 3);
  fs::path dir = temp_dir("vit");
  render::AnimationOptions ao;
  auto info = render::write_animation(frames, dir / "e.webp", ao);
  CHECK(info.frames == 3);
  CHECK(info.width == static_cast<int>(std::ceil(frames[0].width)));
  WebpInfo w = read_webp(slurp(dir / "e.webp"));
  CHECK(w.animated);
  CHECK(w.frames == 3);
  CHECK(w.width == info.width);
  CHECK(w.height == info.height);
  render::write_animation(frames, dir / "e.gif", ao);
  GifInfo g = read_gif(slurp(dir / "e.gif"));
  CHECK(g.frames == 3);
  CHECK(g.width == info.width);
  CHECK(g.height == info.height);
  CHECK_THROWS_AS(render::write_animation(frames, dir / "e.bmp", ao), UsageError);
  CHECK(!fs::exists(dir / "e.bmp"));
}

TEST_CASE("evolution frame titles: step 0 is before training, not epoch 1") {
  AttentionRecord r;
  CHECK(render::evolution_frame_title(r, 3) == "snapshot 3");
  r.metadata["step"] = "0";
  r.metadata["epoch"] = "1";   // what files written before this fix say for the first snapshot
  CHECK(render::evolution_frame_title(r, 0) == "step 0 · before training");
  r.metadata["step"] = "40";
  CHECK(render::evolution_frame_title(r, 1) == "step 40 · epoch 1");
  r.metadata.erase("epoch");
  CHECK(render::evolution_frame_title(r, 1) == "step 40");
}

TEST_CASE("evolution frames share one colour scale") {
  using namespace attnviz::render;
  // Snapshot 0: 0.25 everywhere but 0.5 at (0, 0); snapshot 1: 1.0 at (0, 0). One scale 0.25..1,
  // so the 0.5 cell of frame 0 sits a third up the map, not at its top.
  std::vector<AttentionRecord> snaps(2);
  for (int k = 0; k < 2; ++k) {
    AttentionTensor t("encoder.layer0.self", 1, 2, 2);
    t.data = {k == 0 ? 0.5f : 1.0f, 0.25f, 0.25f, 0.25f};
    snaps[k].tensors.push_back(t);
    snaps[k].metadata["step"] = std::to_string(10 * k);
  }
  EvolutionOptions eo;
  auto frames = evolution_frames(snaps, eo);
  REQUIRE(frames.size() == 2);
  PaintOptions po;
  po.scale = 1;
  const Colormap& cm = Colormap::get("viridis");
  const double want[2] = {(0.5 - 0.25) / 0.75, 1.0};
  for (int k = 0; k < 2; ++k) {
    const Rect* cell = nullptr;
    for (const auto& op : frames[k].ops)
      if (auto* rc = std::get_if<Rect>(&op); rc && rc->stroke_width == 0) {
        cell = rc;
        break;
      }
    REQUIRE(cell);
    Raster r = paint_to_raster(frames[k], po);
    auto px = r.pixel(static_cast<int>(cell->x + 3), static_cast<int>(cell->y + 3));
    auto c = cm.at8(want[k]);
    for (int ch = 0; ch < 3; ++ch) CHECK(std::abs(int(px[ch]) - int(c[ch])) <= 1);
  }
  snaps[1].tensors[0] = AttentionTensor("encoder.layer0.self", 1, 3, 3);
  snaps[1].tensors[0].data.assign(9, 0.1f);
  CHECK_THROWS_AS(evolution_frames(snaps, eo), UsageError);
}

TEST_CASE("CLI: render evolution writes an animation or a strip") {
  fs::path dir = temp_dir("cli");
  std::vector<AttentionRecord> snaps(4);
  for (int k = 0; k < 4; ++k) {
    AttentionTensor t("encoder.layer0.self", 2, 3, 3);
    for (int i = 0; i < 18; ++i) t.data[i] = static_cast<float>((i * (k + 1)) % 7) / 7.f;
    snaps[k].tensors.push_back(t);
    snaps[k].metadata["step"] = std::to_string(100 * k);
  }
  save_records(dir / "snaps.safetensors", snaps);
  const std::string in = "'" + (dir / "snaps.safetensors").string() + "'";
  auto r = run_cli("render evolution " + in + " --mean-heads -o '" + (dir / "a.webp").string() + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(read_webp(slurp(dir / "a.webp")).frames == 4);
  r = run_cli("render evolution " + in + " --frames 0,3 -o '" + (dir / "a.gif").string() + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(read_gif(slurp(dir / "a.gif")).frames == 2);
  r = run_cli("render evolution " + in + " --frames 0,2,3 -o '" + (dir / "strip.svg").string() + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  const std::string svg = slurp(dir / "strip.svg");
  CHECK(svg.find("<svg") != std::string::npos);
  CHECK(run_cli("render evolution " + in + " --frames 9 -o '" + (dir / "x.webp").string() + "'").code == 1);
  CHECK(run_cli("render evolution " + in + " -o '" + (dir / "x.bmp").string() + "'").code == 1);
  CHECK(!fs::exists(dir / "x.webp"));
}

namespace {
// Every tensor of two model files holds the same bytes (the snapshots changed nothing).
void same_parameters(const fs::path& a, const fs::path& b) {
  const StFile x = load_safetensors(a), y = load_safetensors(b);
  REQUIRE(x.tensors.size() == y.tensors.size());
  for (size_t i = 0; i < x.tensors.size(); ++i) {
    CAPTURE(x.tensors[i].name);
    CHECK(x.tensors[i].name == y.tensors[i].name);
    CHECK(x.tensors[i].data == y.tensors[i].data);
  }
}

// Snapshot k's step is k * every (steps 0, every, 2 every, ...), every frame has the same tensors.
void check_snapshots(const fs::path& file, size_t count, int every, const std::string& tensor) {
  const auto snaps = load_records(file);
  REQUIRE(snaps.size() == count);
  for (size_t k = 0; k < snaps.size(); ++k) {
    CHECK(snaps[k].metadata.at("step") == std::to_string(k * every));
    CHECK(snaps[k].metadata.at("snapshot") == std::to_string(k));
    REQUIRE(snaps[k].find(tensor));
    CHECK(snaps[k].find(tensor)->data.size() == snaps[0].find(tensor)->data.size());
  }
  CHECK(snaps.front().find(tensor)->data != snaps.back().find(tensor)->data);   // attention moved
}
}  // namespace

TEST_CASE("CLI: train translate and train textcls take snapshots of a probe; training unchanged") {
  fs::path dir = temp_dir("tasks");
  // Translator: 64 generator pairs, batches of 16 -> 4 steps; snapshots at steps 0, 2, 4.
  const ParallelCorpus c = generate_synthetic({.count = 1, .seed = 5, .split = SyntheticSplit::Test});
  std::string src, tgt;
  for (const auto& w : c.pairs[0].source) src += (src.empty() ? std::string() : std::string(" ")) + w;
  for (const auto& w : c.pairs[0].target) tgt += (tgt.empty() ? std::string() : std::string(" ")) + w;
  const std::string tr = "train translate --synthetic 64 --arch transformer --dim 8 --heads 2 --layers 1 --ff 16 "
                         "--epochs 1 --batch 16 --heldout 0 ";
  auto r = run_cli(tr + "-o '" + (dir / "plain.safetensors").string() + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  r = run_cli(tr + "--snapshot-every 2 --probe '" + src + "' --probe-target '" + tgt + "' -o '" +
              (dir / "snap.safetensors").string() + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  same_parameters(dir / "plain.safetensors", dir / "snap.safetensors");
  check_snapshots(dir / "snap.snapshots.safetensors", 3, 2, "decoder.layer0.cross");
  const auto first = load_records(dir / "snap.snapshots.safetensors")[0];
  CHECK(first.metadata.at("input_text") == src);
  CHECK(first.tokens.at("target").size() == c.pairs[0].target.size() + 1);   // forced target + <eos>
  // The animation of the probe's cross-attention: one frame per snapshot.
  r = run_cli("render evolution '" + (dir / "snap.snapshots.safetensors").string() +
              "' --tensor decoder.layer0.cross --mean-heads -o '" + (dir / "tr.gif").string() + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(read_gif(slurp(dir / "tr.gif")).frames == 3);
  CHECK(run_cli(tr + "--snapshot-every 2 -o '" + (dir / "x.safetensors").string() + "'").code == 1);   // no --probe
  CHECK(run_cli(tr + "--probe-target 'a b' -o '" + (dir / "x.safetensors").string() + "'").code == 1);

  // Text classifier: 40 texts, 8 held out -> 32 in batches of 8 -> 4 steps; snapshots at 0, 2, 4.
  std::string tsv;
  for (int i = 0; i < 40; ++i)
    tsv += i % 2 ? "pets\tthe cat and the dog sleep " + std::to_string(i % 5) + "\n"
                 : "tech\tthe cpu and the disk run " + std::to_string(i % 5) + "\n";
  spit(dir / "texts.tsv", tsv);
  const std::string tc = "train textcls --data '" + (dir / "texts.tsv").string() +
                         "' --arch transformer --dim 8 --layers 1 --heads 2 --epochs 1 --batch 8 --min-count 1 ";
  r = run_cli(tc + "-o '" + (dir / "tc_plain.safetensors").string() + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  r = run_cli(tc + "--snapshot-every 2 --probe 'the cat and the disk' -o '" + (dir / "tc.safetensors").string() + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  same_parameters(dir / "tc_plain.safetensors", dir / "tc.safetensors");
  check_snapshots(dir / "tc.snapshots.safetensors", 3, 2, "encoder.layer0.self");
  CHECK(load_records(dir / "tc.snapshots.safetensors")[1].metadata.at("text") == "the cat and the disk");
}

TEST_CASE("CLI: every command taking a saliency method lists every method (one list, chefer included)") {
  for (const char* cmd : {"render evolution", "render overlay", "render text", "render html", "eval saliency"}) {
    auto r = test::run_cli(std::string(cmd) + " --help");
    REQUIRE_MESSAGE(r.code == 0, r.out);
    CHECK_MESSAGE(r.out.find(saliency_method_list()) != std::string::npos, cmd);
    CHECK_MESSAGE(r.out.find("chefer") != std::string::npos, cmd);
  }
  CHECK(saliency_method_names().size() == 5);
  for (size_t i = 0; i < saliency_method_names().size(); ++i)
    CHECK(parse_saliency_method(saliency_method_names()[i]) == static_cast<SaliencyMethod>(i));
  CHECK(parse_saliency_method("grad_rollout") == SaliencyMethod::GradRollout);
  CHECK_THROWS_AS(parse_saliency_method("magic"), UsageError);
}
