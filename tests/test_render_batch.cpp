// Batch rendering (INPUT... -o DIR/, --batch-file FILE) and big heatmaps (the cell field as one image
// in SVG/PDF, labels thinned to what fits).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "test_util.hpp"

using namespace attnviz;
namespace fs = std::filesystem;

namespace {

// A float32 [rows, cols] .npy of row-normalized random weights.
void write_npy(const fs::path& p, int rows, int cols, unsigned seed) {
  std::string hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                    std::to_string(cols) + "), }";
  hdr += std::string(63 - (10 + hdr.size()) % 64, ' ') + "\n";
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8) + test::u16(static_cast<unsigned>(hdr.size())) + hdr;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  for (int r = 0; r < rows; ++r) {
    std::vector<float> row(cols);
    float s = 0;
    for (float& x : row) s += (x = u(rng));
    for (float& x : row) {
      x /= s;
      char b[4];
      std::memcpy(b, &x, 4);
      bytes.append(b, 4);
    }
  }
  test::spit(p, bytes);
}

bool is_png(const fs::path& p) { return test::slurp(p).rfind("\x89PNG\r\n\x1a\n", 0) == 0; }

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + what.size())) ++n;
  return n;
}

}  // namespace

TEST_CASE("render heatmap INPUT... -o DIR/: all inputs in one call; a bad one is one line and exit 2") {
  const fs::path dir = test::temp_dir("batch_dir");
  std::string inputs;
  for (int i = 0; i < 6; ++i) {
    write_npy(dir / ("m" + std::to_string(i) + ".npy"), 16 + i, 20, i);
    inputs += " '" + (dir / ("m" + std::to_string(i) + ".npy")).string() + "'";
  }
  auto ok = test::run_cli("--threads 2 render heatmap" + inputs + " -o '" + (dir / "out").string() + "/'");
  INFO(ok.out);
  REQUIRE(ok.code == 0);
  CHECK(ok.out.find("wrote 6 files") != std::string::npos);
  for (int i = 0; i < 6; ++i) CHECK(is_png(dir / "out" / ("m" + std::to_string(i) + ".png")));

  // One truncated file among good ones: the others are written, one line names it, exit 2.
  test::spit(dir / "bad.npy", "\x93NUMPY\x01\x00");
  auto bad = test::run_cli("--threads 2 --quiet render heatmap" + inputs + " '" + (dir / "bad.npy").string() +
                           "' --format svg -o '" + (dir / "svg").string() + "/'");
  INFO(bad.out);
  CHECK(bad.code == 2);
  CHECK(count(bad.out, "bad.npy") == 1);
  CHECK(bad.out.find("1 of 7 inputs failed") != std::string::npos);
  CHECK(!fs::exists(dir / "svg" / "bad.svg"));
  for (int i = 0; i < 6; ++i) CHECK(fs::exists(dir / "svg" / ("m" + std::to_string(i) + ".svg")));

  // Several inputs need a folder; two inputs with one stem would overwrite each other.
  CHECK(test::run_cli("render heatmap" + inputs + " -o x.png").code == 1);
  fs::create_directories(dir / "b");
  fs::copy_file(dir / "m0.npy", dir / "b" / "m0.npy");
  auto clash = test::run_cli("render heatmap '" + (dir / "m0.npy").string() + "' '" + (dir / "b" / "m0.npy").string() +
                             "' -o '" + (dir / "c").string() + "/'");
  CHECK(clash.code == 1);
  CHECK(clash.out.find("both be written") != std::string::npos);
}

TEST_CASE("render grid --batch-file FILE: INPUT OUTPUT lines; a malformed line names the file and line") {
  const fs::path dir = test::temp_dir("batch_file");
  std::string list = "# input output\n\n";
  for (int i = 0; i < 3; ++i) {
    write_npy(dir / ("a" + std::to_string(i) + ".npy"), 8, 8, 10 + i);
    list += (dir / ("a" + std::to_string(i) + ".npy")).string() + "\t" + (dir / ("o" + std::to_string(i) + ".pdf")).string() + "\n";
  }
  test::spit(dir / "list.txt", list);
  auto r = test::run_cli("--quiet render grid --batch-file '" + (dir / "list.txt").string() + "'");
  INFO(r.out);
  CHECK(r.code == 0);
  for (int i = 0; i < 3; ++i) CHECK(test::slurp(dir / ("o" + std::to_string(i) + ".pdf")).rfind("%PDF", 0) == 0);
  test::spit(dir / "broken.txt", list + "only-one-path\n");
  auto b = test::run_cli("render grid --batch-file '" + (dir / "broken.txt").string() + "'");
  CHECK(b.code == 2);
  CHECK(b.out.find("broken.txt: line 6") != std::string::npos);
}

TEST_CASE("big heatmaps: the SVG cell field is one image (512x512 <= 3 MB), token labels are thinned") {
  const fs::path dir = test::temp_dir("big_heatmap");
  write_npy(dir / "m512.npy", 512, 512, 7);
  auto r = test::run_cli("render heatmap '" + (dir / "m512.npy").string() + "' -o '" + (dir / "m512.svg").string() + "'");
  INFO(r.out);
  REQUIRE(r.code == 0);
  const std::string svg = test::slurp(dir / "m512.svg");
  CHECK(svg.size() <= 3u << 20);
  // Small matrices keep one vector rect per cell: their SVG has one image fewer (the colorbar's
  // gradient may be an image in both).
  write_npy(dir / "m20.npy", 20, 20, 8);
  REQUIRE(test::run_cli("render heatmap '" + (dir / "m20.npy").string() + "' -o '" + (dir / "m20.svg").string() + "'").code == 0);
  CHECK(count(svg, "<image") == count(test::slurp(dir / "m20.svg"), "<image") + 1);

  // 300 tokens on 4 pt cells: labels thinned (every 2nd) rather than dropped for index ticks.
  write_npy(dir / "m300.npy", 300, 300, 9);
  std::string toks;
  for (int i = 0; i < 300; ++i) toks += "w" + std::to_string(100 + i) + "\n";
  test::spit(dir / "tok.txt", toks);
  const std::string in = "'" + (dir / "m300.npy").string() + "'";
  REQUIRE(test::run_cli("render heatmap " + in + " --tokens '" + (dir / "tok.txt").string() + "' --title - -o '" +
                        (dir / "tok.svg").string() + "'").code == 0);
  REQUIRE(test::run_cli("render heatmap " + in + " --no-labels --title - -o '" + (dir / "none.svg").string() + "'").code == 0);
  const size_t glyphs = count(test::slurp(dir / "tok.svg"), "<use"), none = count(test::slurp(dir / "none.svg"), "<use");
  INFO("glyph uses with tokens " << glyphs << ", without labels " << none);
  // Every 2nd of 2 x 300 labels of 4 glyphs: ~1200 glyphs; all labels would be 2400.
  CHECK(glyphs >= none + 900);
  CHECK(glyphs <= none + 1500);
}
