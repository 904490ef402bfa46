// The confusion-matrix layout: cells, counts, labels, the scale ending at the largest error, a file.
#include "test_util.hpp"

#include <attnviz/render/render.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

using namespace attnviz;
using namespace attnviz::render;

TEST_CASE("confusion layout: one cell per count, the colour scale ends at the largest error count") {
  const std::vector<std::vector<long>> counts = {{50, 2, 0}, {4, 40, 1}, {0, 0, 60}};
  ConfusionOptions opt;
  opt.title = "three classes";
  opt.labels = {"cat", "dog", "eel"};
  DrawList dl = layout_confusion(counts, opt);
  std::vector<Rect> cells;
  std::vector<std::string> texts;
  for (const auto& op : dl.ops) {
    if (auto* r = std::get_if<Rect>(&op); r && cells.size() < 9) cells.push_back(*r);
    if (auto* t = std::get_if<Text>(&op)) texts.push_back(t->text);
  }
  REQUIRE(cells.size() == 9);
  const Colormap& viridis = Colormap::get("viridis");
  // row-major: true class down, predicted across; 38 pt cells
  CHECK(cells[1].x - cells[0].x == doctest::Approx(38));
  CHECK(cells[3].y - cells[0].y == doctest::Approx(38));
  CHECK(cells[3].fill == viridis.at(1.0));    // 4: the largest error count tops the scale
  CHECK(cells[1].fill == viridis.at(0.5));    // 2 of 4
  CHECK(cells[2].fill == viridis.at(0.0));    // 0
  CHECK(cells[0].fill == viridis.at(1.0));    // the diagonal saturates
  for (const char* s : {"50", "2", "4", "40", "60", "cat", "dog", "eel", "three classes", "predicted class", "true class"})
    CHECK_MESSAGE(std::find(texts.begin(), texts.end(), std::string(s)) != texts.end(), s);
  // no labels given: class numbers
  DrawList plain = layout_confusion(counts, {});
  int zeros = 0;
  for (const auto& op : plain.ops)
    if (auto* t = std::get_if<Text>(&op); t && t->text == "0" && t->color == kBlack) ++zeros;
  CHECK(zeros >= 2);   // the axis labels "0" (row and column)
  CHECK_THROWS_AS(layout_confusion({{1, 2}, {3}}, {}), std::invalid_argument);
  CHECK_THROWS_AS(layout_confusion({}, {}), std::invalid_argument);
  opt.labels = {"a"};
  CHECK_THROWS_AS(layout_confusion(counts, opt), std::invalid_argument);
}

TEST_CASE("confusion render writes a PNG of the laid-out size") {
  auto dir = test::temp_dir("render_confusion");
  std::vector<std::vector<long>> counts(10, std::vector<long>(10, 1));
  for (int i = 0; i < 10; ++i) counts[i][i] = 900;
  render_confusion(counts, {.title = "ten"}, dir / "c.png");
  const std::string png = test::slurp(dir / "c.png");
  REQUIRE(png.size() > 24);
  CHECK(png.substr(1, 3) == "PNG");
  const DrawList dl = layout_confusion(counts, {.title = "ten"});
  auto be32 = [&](size_t at) {
    return (static_cast<unsigned char>(png[at]) << 24) | (static_cast<unsigned char>(png[at + 1]) << 16) |
           (static_cast<unsigned char>(png[at + 2]) << 8) | static_cast<unsigned char>(png[at + 3]);
  };
  CHECK(std::abs(static_cast<double>(be32(16)) - dl.width * PaintOptions{}.scale) <= 1.0);   // IHDR width
  CHECK(std::abs(static_cast<double>(be32(20)) - dl.height * PaintOptions{}.scale) <= 1.0);  // IHDR height
}
