// End-to-end tests of `attnviz train|eval|record mnist` on a tiny synthetic IDX set written here.
#include <attnviz/data/idx.hpp>
#include <attnviz/io/safetensors.hpp>
#include <attnviz/record/record.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "test_util.hpp"

using namespace attnviz;
using attnviz::test::run_cli;
namespace fs = std::filesystem;

namespace {

// 8x8 images, 4 classes: the quadrant of a bright 2x2 square.
void write_split(const fs::path& dir, const std::string& stem, int count, unsigned seed) {
  IdxImages im;
  im.count = count, im.rows = 8, im.cols = 8;
  std::vector<std::uint8_t> labels;
  unsigned s = seed;
  auto next = [&] { return (s = s * 1103515245u + 12345u) >> 16; };
  for (int i = 0; i < count; ++i) {
    int q = static_cast<int>(next() % 4);
    labels.push_back(static_cast<std::uint8_t>(q));
    std::vector<std::uint8_t> p(64);
    for (auto& v : p) v = static_cast<std::uint8_t>(next() % 30);
    int r0 = (q / 2) * 4 + static_cast<int>(next() % 3), c0 = (q % 2) * 4 + static_cast<int>(next() % 3);
    for (int r = r0; r < r0 + 2; ++r)
      for (int c = c0; c < c0 + 2; ++c) p[r * 8 + c] = 255;
    im.pixels.insert(im.pixels.end(), p.begin(), p.end());
  }
  save_idx_images(dir / (stem + "-images-idx3-ubyte"), im);
  save_idx_labels(dir / (stem + "-labels-idx1-ubyte"), labels);
}

}  // namespace

TEST_CASE("train, eval and record mnist from the command line") {
  fs::path dir = test::temp_dir("cli_mnist");
  write_split(dir, "train", 400, 1);
  write_split(dir, "t10k", 100, 2);
  const std::string data = "--quiet --threads 2 --data '" + dir.string() + "' ";
  const std::string model = (dir / "m.safetensors").string();
  auto r = run_cli(data + "train mnist --patch 2 --dim 16 --depth 1 --heads 2 --mlp 32 --epochs 6 --lr 5e-3 "
                          "--batch 32 --shift 0 --out '" + model + "'");
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("test accuracy") != std::string::npos);
  CHECK(fs::exists(dir / "m.ckpt.safetensors"));

  auto e = run_cli(data + "eval mnist '" + model + "' --json --heatmap '" + (dir / "conf.png").string() + "'");
  INFO(e.out);
  REQUIRE(e.code == 0);
  auto j = nlohmann::json::parse(e.out);
  CHECK(j["count"] == 100);
  CHECK(j["accuracy"].get<double>() >= 0.9);
  CHECK(j["confusion"].size() == 10);
  CHECK(test::slurp(dir / "conf.png").substr(1, 3) == "PNG");

  auto rec = run_cli(data + "record mnist '" + model + "' --first 3 --class 2 -o '" + (dir / "r.safetensors").string() + "'");
  INFO(rec.out);
  REQUIRE(rec.code == 0);
  auto recs = load_records(dir / "r.safetensors");
  REQUIRE(recs.size() == 3);
  for (auto& x : recs) CHECK(x.metadata.at("label") == "2");
  CHECK(recs[0].tensors.size() == 1);
  CHECK(recs[0].tensors[0].queries == 17);
  CHECK(recs[0].gradients.size() == 1);

  // Resuming a finished run with the same options trains nothing more and gives the same accuracy line.
  auto res = run_cli(data + "train mnist --patch 2 --dim 16 --depth 1 --heads 2 --mlp 32 --epochs 6 --lr 5e-3 "
                            "--batch 32 --shift 0 --out '" + (dir / "m2.safetensors").string() + "' --resume '" +
                     (dir / "m.ckpt.safetensors").string() + "'");
  INFO(res.out);
  CHECK(res.code == 0);
  // The same parameters, bit for bit (the files differ in their throughput metadata).
  StFile a = load_safetensors(model), b = load_safetensors(dir / "m2.safetensors");
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    CHECK(a.tensors[i].name == b.tensors[i].name);
    CHECK(a.tensors[i].data == b.tensors[i].data);
  }
}

TEST_CASE("bad MNIST files and options fail with exit 2 / 1 and one line") {
  fs::path dir = test::temp_dir("cli_mnist_bad");
  write_split(dir, "train", 10, 1);
  test::spit(dir / "t10k-images-idx3-ubyte", std::string("\0\0\x08\x03\0\0\0\x01", 8));
  test::spit(dir / "t10k-labels-idx1-ubyte", std::string("\0\0\x08\x01\0\0\0\x01\x05", 9));
  const std::string data = "--quiet --data '" + dir.string() + "' ";
  auto r = run_cli(data + "train mnist --patch 2 --epochs 1 --out '" + (dir / "m.safetensors").string() + "'");
  CHECK(r.code == 2);
  CHECK(r.out.find("t10k-images-idx3-ubyte") != std::string::npos);
  CHECK(!fs::exists(dir / "m.safetensors"));
  auto u = run_cli(data + "train mnist --arch cnn --out x.safetensors");
  CHECK(u.code == 1);
  auto m = run_cli(data + "eval mnist '" + (dir / "missing.safetensors").string() + "'");
  CHECK(m.code == 2);
  CHECK(m.out.find("missing.safetensors") != std::string::npos);
}
