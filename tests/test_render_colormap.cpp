// Tests of colormaps, normalization, ticks/number formatting and the Pharaoh reader.
#include <attnviz/error.hpp>
#include <attnviz/io/pharaoh.hpp>
#include <attnviz/render/render.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <limits>

using namespace attnviz;
using namespace attnviz::render;

TEST_CASE("colormap tables hold the published end points") {
  // matplotlib _cm_listed: viridis[0] = (0.267004, 0.004874, 0.329415), viridis[255] = (0.993248, 0.906157, 0.143936)
  auto v0 = Colormap::get("viridis").at8(0.0), v1 = Colormap::get("viridis").at8(1.0);
  CHECK(v0 == std::array<std::uint8_t, 3>{68, 1, 84});
  CHECK(v1 == std::array<std::uint8_t, 3>{253, 231, 37});
  // magma[0] = (0.001462, 0.000466, 0.013866); inferno[255] = (0.988362, 0.998364, 0.644924)
  CHECK(Colormap::get("magma").at8(0.0) == std::array<std::uint8_t, 3>{0, 0, 4});
  CHECK(Colormap::get("inferno").at8(1.0) == std::array<std::uint8_t, 3>{252, 255, 164});
  // cividis[0] = (0.0, 0.135112, 0.304751); plasma[0] = (0.050383, 0.029803, 0.527975)
  CHECK(Colormap::get("cividis").at8(0.0) == std::array<std::uint8_t, 3>{0, 34, 78});
  CHECK(Colormap::get("plasma").at8(0.0) == std::array<std::uint8_t, 3>{13, 8, 135});
  CHECK(Colormap::get("gray").at8(0.5) == std::array<std::uint8_t, 3>{128, 128, 128});
  // The diverging map is white-ish in the middle, blue at the bottom, red at the top.
  auto mid = Colormap::get("coolwarm").at8(0.5), lo = Colormap::get("coolwarm").at8(0), hi = Colormap::get("coolwarm").at8(1);
  CHECK(mid[0] > 200);
  CHECK(mid[2] > 200);
  CHECK(lo[2] > lo[0]);
  CHECK(hi[0] > hi[2]);
  CHECK(Colormap::get("coolwarm").diverging());
  CHECK(Colormap::names().size() == 7);
}

TEST_CASE("colormap lookup interpolates, clamps and marks NaN") {
  const auto& m = Colormap::get("viridis");
  const auto& t = m.table();
  Color c = m.at(0.5 / 255.0);  // halfway between entries 0 and 1
  CHECK(c.r * 255 == doctest::Approx((t[0][0] + t[1][0]) / 2.0));
  CHECK(m.at(-3) == m.at(0));
  CHECK(m.at(7) == m.at(1));
  CHECK(m.at(std::numeric_limits<double>::quiet_NaN()) == kNonFinite);
  CHECK_THROWS_AS(Colormap::get("jet"), UsageError);
}

TEST_CASE("normalization: global, per row, none, vmin/vmax") {
  Mat m(2, 3);
  m << 0.1f, 0.2f, 0.7f, 0.5f, 0.25f, 0.25f;
  ScaleOptions g;
  ValueRange r = value_range(m, g);
  CHECK(r.vmin == doctest::Approx(0.1));
  CHECK(r.vmax == doctest::Approx(0.7));
  Mat u = normalize(m, g, r);
  CHECK(u(0, 0) == doctest::Approx(0.0));
  CHECK(u(0, 2) == doctest::Approx(1.0));
  CHECK(u(1, 0) == doctest::Approx(0.4 / 0.6));

  ScaleOptions row{Normalization::PerRow};
  Mat ur = normalize(m, row, value_range(m, row));
  CHECK(ur(1, 0) == doctest::Approx(1.0));
  CHECK(ur(1, 1) == doctest::Approx(0.0));
  CHECK(ur(0, 1) == doctest::Approx(1.0 / 6.0));

  ScaleOptions none{Normalization::None};
  ValueRange rn = value_range(m, none);
  CHECK(rn.vmin == 0.0);
  CHECK(rn.vmax == 1.0);
  CHECK(normalize(m, none, rn)(0, 2) == doctest::Approx(0.7));

  ScaleOptions fixed;
  fixed.vmin = 0.2;
  fixed.vmax = 0.6;
  ValueRange rf = value_range(m, fixed);
  Mat uf = normalize(m, fixed, rf);
  CHECK(uf(0, 0) == 0.0f);  // clamped
  CHECK(uf(0, 2) == 1.0f);
  CHECK(uf(1, 1) == doctest::Approx(0.125));
  ScaleOptions bad;
  bad.vmin = 1;
  bad.vmax = 0;
  CHECK_THROWS_AS(value_range(m, bad), UsageError);
  CHECK(parse_normalization("row") == Normalization::PerRow);
  CHECK_THROWS_AS(parse_normalization("rows"), UsageError);
}

TEST_CASE("non-finite values stay NaN and are counted; constant matrices do not divide by zero") {
  Mat m(1, 3);
  m << 0.5f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity();
  ValueRange r = value_range(m, {});
  CHECK(std::isfinite(r.vmin));
  CHECK(r.vmax > r.vmin);
  Mat u = normalize(m, {}, r);
  CHECK(std::isnan(u(0, 1)));
  CHECK(std::isnan(u(0, 2)));
  CHECK(count_non_finite(m) == 2);
  Mat c = Mat::Constant(2, 2, 1.0f);
  ValueRange rc = value_range(c, {});
  CHECK(rc.vmax > rc.vmin);
  CHECK(rc.to_unit(1.0) == doctest::Approx(1.0));
}

TEST_CASE("text contrast picks white on dark and black on light cells") {
  CHECK(contrast_text_color(Colormap::get("viridis").at(0)) == kWhite);
  CHECK(contrast_text_color(Colormap::get("viridis").at(1)) == kBlack);
  CHECK(contrast_text_color(kWhite) == kBlack);
}

TEST_CASE("nice ticks and value formatting") {
  auto t = nice_ticks(0.0, 1.0, 6);
  REQUIRE(t.size() == 6);
  CHECK(t[1] == doctest::Approx(0.2));
  auto t2 = nice_ticks(0.0086, 0.92, 5);
  CHECK(t2.front() >= 0.0086);
  CHECK(t2.back() <= 0.92);
  CHECK(t2.size() >= 3);
  CHECK(t2.size() <= 5);
  CHECK(format_value(0.25, 2) == "0.25");
  CHECK(format_value(0.2, 2) == "0.2");
  CHECK(format_value(12.0, 3) == "12");
  CHECK(format_value(std::numeric_limits<double>::quiet_NaN()) == "NaN");
}

TEST_CASE("Pharaoh lines: sure, possible (? and p), errors name the line") {
  Alignment a = parse_pharaoh_line("0-0 1-1 2?2 3p4\r");
  REQUIRE(a.links.size() == 4);
  CHECK(a.links[2] == AlignmentLink{2, 2, false});
  CHECK(a.links[3] == AlignmentLink{3, 4, false});
  CHECK(a.contains(1, 1));
  CHECK(a.contains(2, 2));
  CHECK_FALSE(a.contains(2, 2, true));
  CHECK(a.max_source() == 3);
  CHECK(a.max_target() == 4);
  CHECK(to_pharaoh(a) == "0-0 1-1 2?2 3?4");
  CHECK(parse_pharaoh_line("").links.empty());
  try {
    parse_pharaoh_line("0-0 1x1", "gold.txt", 7);
    FAIL("no error");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("gold.txt: line 7: '1x1'") != std::string::npos);
  }
  CHECK_THROWS_AS(parse_pharaoh_line("0--1"), InputError);
  CHECK_THROWS_AS(parse_pharaoh_line("-1-2"), InputError);
}
