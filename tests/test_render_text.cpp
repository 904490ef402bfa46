// Tests of the highlighted-text view: shades, normalisation, token-box pixel colours, wrapping,
// record selection, the HTML page and its escaping.
#include <attnviz/error.hpp>
#include <attnviz/record/record.hpp>
#include <attnviz/render/draw.hpp>
#include <attnviz/render/escape.hpp>
#include <attnviz/render/text_view.hpp>

#include <doctest/doctest.h>

#include <cmath>

#include "test_util.hpp"

using namespace attnviz;
using namespace attnviz::render;

namespace {

TextViewItem item(std::vector<std::string> toks, std::vector<float> w, std::string label = "law",
                  std::string pred = "law") {
  TextViewItem it;
  it.tokens = std::move(toks);
  it.weights = std::move(w);
  it.label = std::move(label);
  it.prediction = std::move(pred);
  it.probability = 0.9;
  return it;
}

int byte(double v) { return static_cast<int>(std::lround(std::clamp(v, 0.0, 1.0) * 255)); }

}  // namespace

TEST_CASE("shades: reversed magma faded to white; the peak is the darkest") {
  TextViewOptions opt;
  CHECK(token_shade(0.0, opt) == kWhite);
  Color peak = token_shade(1.0, opt);
  Color lowest = Colormap::get("magma").at(0.0);
  CHECK(peak.r == doctest::Approx(lowest.r));
  CHECK(relative_luminance(token_shade(0.3, opt)) > relative_luminance(token_shade(0.7, opt)));
  CHECK(token_shade(NAN, opt) == kNonFinite);
  opt.fade = false;
  opt.reverse = false;
  CHECK(token_shade(0.25, opt) == Colormap::get("magma").at(0.25));
}

TEST_CASE("normalisation: per sentence, global, none") {
  std::vector<TextViewItem> items = {item({"a", "b"}, {0.2f, 0.8f}), item({"c", "d"}, {0.1f, 0.4f})};
  TextViewOptions opt;
  auto s = normalized_weights(items, opt);
  CHECK(s[0][1] == doctest::Approx(1.0));
  CHECK(s[1][1] == doctest::Approx(1.0));
  CHECK(s[1][0] == doctest::Approx(0.25));
  opt.norm = TextNorm::Global;
  s = normalized_weights(items, opt);
  CHECK(s[1][1] == doctest::Approx(0.5));
  opt.norm = TextNorm::None;
  s = normalized_weights(items, opt);
  CHECK(s[0][0] == doctest::Approx(0.2));
  CHECK_THROWS_AS(parse_text_norm("row"), UsageError);
}

TEST_CASE("token boxes carry the right colours (pixel check) and text stays readable") {
  std::vector<TextViewItem> items = {
      item({"The", "judge", "ruled", "."}, {0.1f, 0.6f, 0.2f, 0.1f}),
      item({"Cheese", "is", "good"}, {0.7f, 0.1f, 0.2f}, "food", "law")};
  TextViewOptions opt;
  std::vector<TokenBox> boxes;
  DrawList list = layout_text(items, opt, &boxes);
  REQUIRE(boxes.size() == 7);
  PaintOptions paint;
  paint.scale = 2;
  Raster r = paint_to_raster(list, paint);
  auto s = normalized_weights(items, opt);
  for (const auto& b : boxes) {
    CAPTURE(b.item);
    CAPTURE(b.token);
    Color want = token_shade(s[b.item][b.token], opt);
    CHECK(b.fill == want);
    // Sample just inside the box's left-bottom corner, where no glyph ink is.
    int px = static_cast<int>((b.x + 1.0) * paint.scale), py = static_cast<int>((b.y + b.h - 1.0) * paint.scale);
    auto p = r.pixel(px, py);
    CHECK(std::abs(p[0] - byte(want.r)) <= 2);
    CHECK(std::abs(p[1] - byte(want.g)) <= 2);
    CHECK(std::abs(p[2] - byte(want.b)) <= 2);
  }
  // The peak token "judge" is dark, so its text is drawn white; a pale token's text is black.
  bool white_text = false, black_text = false;
  for (const auto& op : list.ops)
    if (auto* t = std::get_if<Text>(&op)) {
      if (t->text == "judge") white_text = t->color == kWhite;
      if (t->text == "The") black_text = t->color == kBlack;
    }
  CHECK(white_text);
  CHECK(black_text);
  // Tokens of one sentence are left to right on a line; the second sentence is below the first.
  CHECK(boxes[1].x > boxes[0].x + boxes[0].w);
  CHECK(boxes[4].y > boxes[3].y + boxes[3].h);
}

TEST_CASE("long sentences wrap inside the column width") {
  std::vector<std::string> toks;
  std::vector<float> w;
  for (int i = 0; i < 80; ++i) toks.push_back("word" + std::to_string(i)), w.push_back(0.0125f);
  TextViewOptions opt;
  opt.width = 300;
  std::vector<TokenBox> boxes;
  DrawList list = layout_text({item(toks, w)}, opt, &boxes);
  double maxx = 0;
  int lines = 1;
  for (size_t i = 0; i < boxes.size(); ++i) {
    maxx = std::max(maxx, boxes[i].x + boxes[i].w);
    if (i && boxes[i].y > boxes[i - 1].y) ++lines;
  }
  CHECK(maxx <= 16 + 300 + 0.01);
  CHECK(lines >= 5);
  CHECK(list.width == doctest::Approx(300 + 32));
  CHECK_THROWS_AS(layout_text({item({"a"}, {0.1f, 0.2f})}, opt), UsageError);
}

TEST_CASE("text_item reads a record; HTML shows weights on hover; files by extension") {
  AttentionRecord rec;
  AttentionTensor t("pool", 1, 1, 3, "query", "tokens");
  t.data = {0.2f, 0.7f, 0.1f};
  rec.tensors.push_back(t);
  rec.tokens["tokens"] = {"the", "<judge>", "ruled"};
  rec.tokens["query"] = {"pool"};
  rec.metadata = {{"label", "law"}, {"prediction", "law"}, {"probability", "0.875"}, {"source", "test #3"}};
  TextViewItem it = text_item(rec, {});
  CHECK(it.tokens.size() == 3);
  CHECK(it.weights[1] == doctest::Approx(0.7f));
  CHECK(it.probability == doctest::Approx(0.875));
  CHECK(it.note == "test #3");
  TextSelection bad;
  bad.tensor = "encoder.layer0.self";
  CHECK_THROWS_WITH_AS(text_item(rec, bad), doctest::Contains("pool"), UsageError);
  TextSelection bad_head;
  bad_head.head = -2;
  CHECK_THROWS_AS(text_item(rec, bad_head), UsageError);
  bad_head.head = 1;
  CHECK_THROWS_AS(text_item(rec, bad_head), UsageError);

  TextViewOptions opt;
  std::string html = text_view_html({it}, opt);
  CHECK(html.find("&lt;judge&gt;") != std::string::npos);            // escaped
  CHECK(html.find("data-w=\"weight 0.7000 (shade 1.00)\"") != std::string::npos);
  CHECK(html.find(":hover::after") != std::string::npos);
  CHECK(html.find("<script") == std::string::npos);                  // self-contained, static
  CHECK(html.find("http") == std::string::npos);

  auto dir = test::temp_dir("render_text");
  render_text({it}, opt, dir / "a.png");
  render_text({it}, opt, dir / "a.svg");
  render_text({it}, opt, dir / "a.pdf");
  render_text({it}, opt, dir / "a.html");
  CHECK(test::slurp(dir / "a.png").substr(1, 3) == "PNG");
  CHECK(test::slurp(dir / "a.svg").find("<svg") != std::string::npos);
  CHECK(test::slurp(dir / "a.pdf").substr(0, 4) == "%PDF");
  CHECK(test::slurp(dir / "a.html").find("<!DOCTYPE html>") == 0);
  CHECK_THROWS_AS(render_text({it}, opt, dir / "a.bmp"), UsageError);
}

TEST_CASE("html_escape: the five XML entities, other bytes (UTF-8) unchanged; Pango markup the same") {
  CHECK(html_escape("a < b && c > \"d\" 'e'") == "a &lt; b &amp;&amp; c &gt; &quot;d&quot; &#39;e&#39;");
  CHECK(html_escape("") == "");
  CHECK(html_escape("Grüße, 世界") == "Grüße, 世界");
  CHECK(escape_markup("<b>it's</b>") == html_escape("<b>it's</b>"));
}
