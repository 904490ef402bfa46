// Tests of the per-head views of issue 16: alignment-head ranking (align --rank-heads, grid
// --annotate-aer), per-head statistics (attnviz stats) and differences (render diff), on
// hand-made records with hand-computed answers, library and CLI.
#include <attnviz/analysis/alignment.hpp>
#include <attnviz/error.hpp>
#include <attnviz/record/stats.hpp>
#include <attnviz/render/render.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "test_util.hpp"

using namespace attnviz;
using namespace attnviz::test;

namespace {

// decoder.layer0.cross [2 heads, 2 target, 3 source]: head 0 aligns i-i, head 1 puts both rows on
// source 2. Mean over heads: row 0 [.45 .15 .4], row 1 [.15 .45 .4] -> aligns i-i too.
AttentionRecord two_heads() {
  AttentionRecord r;
  AttentionTensor t("decoder.layer0.cross", 2, 2, 3);
  t.data = {0.8f, 0.1f, 0.1f, 0.1f, 0.8f, 0.1f,    // head 0
            0.1f, 0.2f, 0.7f, 0.2f, 0.1f, 0.7f};   // head 1
  r.tensors.push_back(t);
  AttentionTensor s("encoder.layer0.self", 1, 3, 3);
  s.data = {1, 0, 0, 0.5f, 0.5f, 0, 0.2f, 0.3f, 0.5f};
  r.tensors.push_back(s);
  return r;
}

double row_entropy(std::initializer_list<double> p) {
  double e = 0;
  for (double x : p) e -= x > 0 ? x * std::log(x) : 0;
  return e;
}

}  // namespace

TEST_CASE("rank_heads: the aligning head first, the mean over heads, the average head AER") {
  const Alignment gold = parse_pharaoh_line("0-0 1-1");
  HeadRanking r = rank_heads({two_heads()}, {gold});
  REQUIRE(r.heads.size() == 2);   // only the cross-attention by default
  CHECK(r.heads[0].head == 0);
  CHECK(r.heads[0].score.aer() == doctest::Approx(0.0));
  CHECK(r.heads[1].head == 1);
  // head 1 predicts 2-0 and 2-1: |A| = 2, |S| = 2, no hit -> AER 1
  CHECK(r.heads[1].score.aer() == doctest::Approx(1.0));
  REQUIRE(r.means.size() == 1);
  CHECK(r.means[0].head == -1);
  CHECK(r.means[0].score.aer() == doctest::Approx(0.0));
  CHECK(r.mean_head_aer == doctest::Approx(0.5));
  CHECK(r.heads[0].layer == 0);
  // A filter that matches nothing, a gold count that does not match, a link off the matrix.
  RankHeadsOptions nothing;
  nothing.tensors = "nothing";
  CHECK_THROWS_AS(rank_heads({two_heads()}, {gold}, nothing), InputError);
  CHECK_THROWS_AS(rank_heads({two_heads()}, {gold, gold}), InputError);
  CHECK_THROWS_AS(rank_heads({two_heads()}, {parse_pharaoh_line("3-0")}), InputError);
}

TEST_CASE("head_stats: entropy, sink, distance and top-k mass by hand") {
  HeadStatsOptions top1;
  top1.top_k = 1;
  HeadStatsTable t = head_stats({two_heads(), two_heads()}, top1);
  REQUIRE(t.stats.size() == 3);   // cross heads 0, 1 and the self tensor's head
  const HeadStat& h0 = t.stats[0];
  CHECK(h0.tensor == "decoder.layer0.cross");
  CHECK(h0.rows == 4);   // 2 rows x 2 samples
  CHECK(h0.entropy == doctest::Approx(row_entropy({0.8, 0.1, 0.1})).epsilon(1e-5));
  CHECK(h0.sink == doctest::Approx((0.8 + 0.1) / 2));
  CHECK(h0.distance == doctest::Approx((0.3 + 0.2) / 2));   // row 0: .1*1 + .1*2; row 1: .1*1 + .1*1
  CHECK(h0.top_k == doctest::Approx(0.8));
  const HeadStat& s = t.stats[2];
  CHECK(s.tensor == "encoder.layer0.self");
  CHECK(s.entropy == doctest::Approx((0 + row_entropy({0.5, 0.5}) + row_entropy({0.2, 0.3, 0.5})) / 3).epsilon(1e-5));
  CHECK(s.sink == doctest::Approx((1 + 0.5 + 0.2) / 3));
  CHECK(s.distance == doctest::Approx((0 + 0.5 + (0.2 * 2 + 0.3)) / 3));
  HeadStatsOptions top2;
  top2.top_k = 2;
  CHECK(head_stats({two_heads()}, top2).stats[1].top_k == doctest::Approx(0.9));
  // A second record without the tensor is named.
  AttentionRecord other;
  other.tensors.push_back(AttentionTensor("x", 1, 1, 1));
  other.tensors.back().data = {1};
  try {
    HeadStatsOptions named;
    named.sources = {"a.st", "b.st"};
    head_stats({two_heads(), other}, named);
    FAIL("no error");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("b.st") != std::string::npos);
  }
}

TEST_CASE("difference: largest changes and the symmetric diverging scale") {
  using namespace attnviz::render;
  LabelledMatrix a, b;
  a.values.resize(2, 2);
  b.values.resize(2, 2);
  a.values << 0.5f, 0.2f, 0.3f, 0.0f;
  b.values << 0.5f, 0.6f, 0.1f, 0.0f;   // A - B = [[0, -0.4], [0.2, 0]]
  a.title = "A", b.title = "B";
  auto ch = largest_changes(a.values, b.values, 2);
  REQUIRE(ch.size() == 2);
  CHECK(ch[0].query == 0);
  CHECK(ch[0].key == 1);
  CHECK(ch[0].a - ch[0].b == doctest::Approx(-0.4));
  CHECK(ch[1].query == 1);
  CHECK(ch[1].key == 0);
  CHECK(largest_changes(a.values, b.values, 10).size() == 4);

  HeatmapOptions opt;
  opt.cmap = "viridis";   // not diverging: replaced by coolwarm
  opt.cell = 20;
  DrawList dl = layout_diff(a, b, opt);
  PaintOptions po;
  po.scale = 1;
  Raster r = paint_to_raster(dl, po);
  std::vector<Rect> cells;
  for (const auto& op : dl.ops)
    if (auto* rc = std::get_if<Rect>(&op); rc && rc->stroke_width == 0 && cells.size() < 4) cells.push_back(*rc);
  REQUIRE(cells.size() == 4);
  const Colormap& cm = Colormap::get("coolwarm");
  // Scale [-0.4, 0.4]: 0 -> the middle (white-ish), -0.4 -> the bottom, 0.2 -> 3/4.
  const double want_t[4] = {0.5, 0.0, 0.75, 0.5};
  for (int i = 0; i < 4; ++i) {
    auto px = r.pixel(static_cast<int>(cells[i].x + 3), static_cast<int>(cells[i].y + 3));
    auto want = cm.at8(want_t[i]);
    for (int c = 0; c < 3; ++c) CHECK(std::abs(int(px[c]) - int(want[c])) <= 1);
  }
  LabelledMatrix c;
  c.values = Mat::Zero(3, 2);
  CHECK_THROWS_AS(difference(a, c), UsageError);
}

TEST_CASE("CLI: align --rank-heads, grid --annotate-aer, render diff, stats") {
  fs::path dir = temp_dir("cli");
  save_record(dir / "rec.safetensors", two_heads());
  spit(dir / "gold.talp", "0-0 1-1\n");
  auto r = run_cli("align '" + (dir / "rec.safetensors").string() + "' --gold '" + (dir / "gold.talp").string() +
                   "' --rank-heads --json");
  REQUIRE(r.code == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["heads"][0]["head"] == 0);
  CHECK(j["heads"][0]["aer"].get<double>() == doctest::Approx(0.0));
  CHECK(j["heads"][1]["aer"].get<double>() == doctest::Approx(1.0));
  CHECK(j["mean_head_aer"].get<double>() == doctest::Approx(0.5));
  CHECK(j["head_means"][0]["aer"].get<double>() == doctest::Approx(0.0));
  r = run_cli("align '" + (dir / "rec.safetensors").string() + "' --rank-heads");
  CHECK(r.code == 1);   // needs --gold

  // The annotated grid is taller than the plain one by the caption line.
  const std::string rec = "'" + (dir / "rec.safetensors").string() + "'";
  REQUIRE(run_cli("render grid " + rec + " -o '" + (dir / "plain.svg").string() + "'").code == 0);
  r = run_cli("render grid " + rec + " --annotate-aer '" + (dir / "gold.talp").string() + "' -o '" +
              (dir / "aer.svg").string() + "'");
  REQUIRE(r.code == 0);
  const std::string svg = slurp(dir / "aer.svg");
  CHECK(svg.size() > slurp(dir / "plain.svg").size());
  spit(dir / "bad.talp", "5-0\n");
  r = run_cli("render grid " + rec + " --annotate-aer '" + (dir / "bad.talp").string() + "' -o '" +
              (dir / "bad.png").string() + "'");
  CHECK(r.code == 2);
  CHECK(r.out.find("bad.talp") != std::string::npos);
  CHECK(!fs::exists(dir / "bad.png"));

  // Head 0 - head 1 of one tensor: the largest change is +0.7 at (0, 0) (ties: lower query first).
  r = run_cli("render diff " + rec + " --tensor decoder.layer0.cross --head 0 --head-b 1 --top 2 -o '" +
              (dir / "diff.png").string() + "'");
  REQUIRE(r.code == 0);
  CHECK(r.out.find("0 -> 0: 0.8000, 0.1000, +0.7000") != std::string::npos);
  CHECK(r.out.find("1 -> 1: 0.8000, 0.1000, +0.7000") != std::string::npos);
  CHECK(fs::file_size(dir / "diff.png") > 1000);
  CHECK(run_cli("render diff " + rec + " --tensor decoder.layer0.cross -o '" + (dir / "same.png").string() + "'").code == 1);
  // Two files: the record against itself is all zero.
  r = run_cli("render diff " + rec + " " + rec + " --mean-heads -t decoder.layer0.cross -o '" + (dir / "zero.svg").string() + "'");
  REQUIRE(r.code == 0);
  CHECK(r.out.find("+0.0000") != std::string::npos);

  r = run_cli("stats " + rec + " " + rec + " --top-k 1 --json -o '" + (dir / "stats.png").string() + "'");
  REQUIRE(r.code == 0);
  auto js = nlohmann::json::parse(r.out.substr(0, r.out.rfind("wrote")));
  CHECK(js["samples"] == 2);
  CHECK(js["heads"][0]["sink"].get<double>() == doctest::Approx(0.45));
  CHECK(js["heads"][0]["top_k_mass"].get<double>() == doctest::Approx(0.8));
  CHECK(fs::file_size(dir / "stats.png") > 1000);
}
