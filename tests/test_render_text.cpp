// Tests of the highlighted-text view: shades, normalisation, token-box pixel colours, wrapping,
// record selection, the HTML page and its escaping, and a decoder row's query / next-token marks.
#include <attnviz/data/image.hpp>
#include <attnviz/error.hpp>
#include <attnviz/record/record.hpp>
#include <attnviz/render/draw.hpp>
#include <attnviz/render/escape.hpp>
#include <attnviz/render/text_view.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

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

// ---- a causal (decoder) row: the query token and the token it predicts ----------------------

namespace {

// "<s> The cat sat on the mat": one causal layer of 2 heads (row i spread over keys 0..i), row 3
// = 0.1, 0.2, 0.3, 0.4 in both heads, so token 0 is pale and token 3 the darkest.
AttentionRecord causal_record(bool with_metadata) {
  AttentionRecord rec;
  const int T = 7;
  AttentionTensor t("decoder.layer0.self", 2, T, T, "tokens", "tokens");
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < T; ++i)
      for (int k = 0; k <= i; ++k) t.at(h, i, k) = i == 3 ? 0.1f * (k + 1) : 1.f / (i + 1);
  rec.tensors.push_back(t);
  rec.tokens["tokens"] = {"<s>", "The", "cat", "sat", "on", "the", "mat"};
  if (with_metadata) rec.metadata["causal"] = "true";
  return rec;
}

bool near(const Color& c, double r, double g, double b, double tol = 0.1) {
  return std::abs(c.r - r) <= tol && std::abs(c.g - g) <= tol && std::abs(c.b - b) <= tol;
}
// Pixel (x, y) of a decoded image (points * scale), as a colour.
Color pixel(const DecodedImage& im, double x_pt, double y_pt, double scale) {
  const int x = static_cast<int>(x_pt * scale), y = static_cast<int>(y_pt * scale);
  if (x < 0 || y < 0 || x >= im.width || y >= im.height) throw std::out_of_range("pixel outside the image");
  const float* p = &im.pixels[(static_cast<size_t>(y) * im.width + x) * im.channels];
  return im.channels >= 3 ? Color{p[0], p[1], p[2], 1} : Color{p[0], p[0], p[0], 1};
}
bool is_mark(const Color& c) { return near(c, kQueryMark.r, kQueryMark.g, kQueryMark.b); }
int mark_pixels(const DecodedImage& im) {
  int n = 0;
  for (int y = 0; y < im.height; ++y)
    for (int x = 0; x < im.width; ++x) n += is_mark(pixel(im, x, y, 1.0));
  return n;
}
// The darkest channel value inside a box (its text ink), in [0, 1].
double darkest(const DecodedImage& im, const TokenBox& b, double scale) {
  double m = 1;
  for (double y = b.y + 1; y < b.y + b.h - 1; y += 0.5 / scale)
    for (double x = b.x + 1; x < b.x + b.w - 1; x += 0.5 / scale) {
      const Color c = pixel(im, x, y, scale);
      m = std::min({m, c.r, c.g, c.b});
    }
  return m;
}
// The SVG stroke Cairo writes for kQueryMark.
std::string svg_mark_stroke() {
  return fmt::format("stroke:rgb({:.6f}%,{:.6f}%,{:.6f}%)", kQueryMark.r * 100, kQueryMark.g * 100, kQueryMark.b * 100);
}
int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("a causal row: text_item marks the query and the token it predicts; bidirectional rows stay unmarked") {
  for (bool meta : {true, false}) {   // said by the record, or found: nothing above the diagonal
    CAPTURE(meta);
    const AttentionRecord rec = causal_record(meta);
    TextSelection sel;
    sel.tensor = "decoder.layer0.self";
    sel.query = 3;
    TextViewItem it = text_item(rec, sel);
    CHECK(it.query == 3);
    CHECK(it.next_token == "on");
    CHECK(query_caption(it) == "query “sat” (position 3) → next token “on”");
    sel.query = 6;   // the last position: what it predicts is not in the record
    it = text_item(rec, sel);
    CHECK(it.query == 6);
    CHECK(it.next_token.empty());
    CHECK(query_caption(it) == "query “mat” (position 6) → its next token is not in the record");
  }
  AttentionRecord enc = causal_record(false);
  enc.tensors[0].at(1, 0, 4) = 0.2f;   // one weight above the diagonal: bidirectional
  TextSelection sel;
  sel.tensor = "decoder.layer0.self";
  sel.query = 3;
  CHECK(text_item(enc, sel).query == -1);
  CHECK(query_caption(text_item(enc, sel)).empty());
  AttentionRecord said = causal_record(false);
  said.metadata["causal"] = "false";
  CHECK(text_item(said, sel).query == -1);
  // A pooling row (1 query over the tokens) never is.
  CHECK(text_item([] {
          AttentionRecord r;
          AttentionTensor t("pool", 1, 1, 2, "query", "tokens");
          t.data = {0.5f, 0.5f};
          r.tensors.push_back(t);
          r.tokens["tokens"] = {"a", "b"};
          return r;
        }(), {}).query == -1);
  // A translator's teacher-forced decoder: keys <bos> y1 .. yn ("target_input"); row i predicts
  // "target" token i (y_{i+1}, <eos> last). decoder.relevance_self names its rows by "target".
  AttentionRecord mt;
  for (const std::string qaxis : {"target_input", "target"}) {
    AttentionTensor t(qaxis == "target" ? "decoder.relevance_self" : "decoder.layer0.self", 1, 3, 3, qaxis, "target_input");
    for (int i = 0; i < 3; ++i)
      for (int k = 0; k <= i; ++k) t.at(0, i, k) = 1.f / (i + 1);
    mt.tensors.push_back(t);
  }
  mt.tokens["target_input"] = {"<bos>", "der", "hund"};
  mt.tokens["target"] = {"der", "hund", "<eos>"};
  for (const std::string name : {"decoder.layer0.self", "decoder.relevance_self"}) {
    CAPTURE(name);
    TextSelection s;
    s.tensor = name;
    s.query = 1;
    CHECK(text_item(mt, s).next_token == "hund");
    s.query = 2;
    const TextViewItem last = text_item(mt, s);
    CHECK(last.query == 2);
    CHECK(last.next_token == "<eos>");
    // <eos> is not in the text: the header names it, no dashed box or arrow.
    const DrawList l = layout_text({last}, {});
    int dashed = 0, arrows = 0;
    for (const auto& op : l.ops) {
      if (auto* ln = std::get_if<Line>(&op)) dashed += ln->dash > 0;
      arrows += std::holds_alternative<Polygon>(op);
    }
    CHECK(dashed == 0);
    CHECK(arrows == 0);
  }
}

TEST_CASE("a causal row in PNG, SVG and HTML: query outlined, next token dashed with an arrow, later tokens grey") {
  const AttentionRecord rec = causal_record(true);
  TextSelection sel;
  sel.tensor = "decoder.layer0.self";
  sel.query = 3;
  const TextViewItem it = text_item(rec, sel);
  TextViewOptions opt;
  std::vector<TokenBox> boxes;
  const DrawList list = layout_text({it}, opt, &boxes);
  REQUIRE(boxes.size() == 7);
  const TokenBox &q = boxes[3], &n = boxes[4];
  REQUIRE(q.y == n.y);   // one line: the arrow is drawn
  // The header line names both, in the marks' colour.
  bool caption = false;
  for (const auto& op : list.ops)
    if (auto* t = std::get_if<Text>(&op)) caption |= t->text == query_caption(it) && t->color == kQueryMark;
  CHECK(caption);

  const auto dir = test::temp_dir("render_text_causal");
  const double scale = 2;
  render_text({it}, opt, dir / "c.png", {scale});
  const DecodedImage im = read_image(dir / "c.png");
  CHECK(im.width == static_cast<int>(std::ceil(list.width * scale)));
  // The query's outline: a 1.75 pt stroke just outside its box (left edge, middle).
  CHECK(is_mark(pixel(im, q.x - 0.875, q.y + q.h / 2, scale)));
  CHECK(is_mark(pixel(im, q.x + q.w / 2, q.y + q.h + 0.875, scale)));
  // The box itself keeps its shade (the darkest: the query's own weight 0.4 is the row's largest).
  CHECK(near(pixel(im, q.x + 1, q.y + q.h - 1, scale), q.fill.r, q.fill.g, q.fill.b, 0.02));
  // The next token's outline is dashed: along its top edge some pixels are the mark, some are not.
  int on = 0, off = 0;
  for (double x = n.x + 1; x < n.x + n.w - 1; x += 0.5) (is_mark(pixel(im, x, n.y - 0.625, scale)) ? on : off)++;
  CHECK(on >= 4);
  CHECK(off >= 2);
  // The arrow runs over the line from the query's centre to the next token's.
  CHECK(is_mark(pixel(im, (q.x + q.w / 2 + n.x + n.w / 2) / 2, q.y - 7, scale)));
  CHECK_FALSE(is_mark(pixel(im, (q.x + q.w / 2 + n.x + n.w / 2) / 2, q.y - 3.5, scale)));
  // Tokens after the next one are unseen by the row: grey ink; earlier ones black ink.
  CHECK(darkest(im, boxes[5], scale) > 0.5);
  CHECK(darkest(im, boxes[6], scale) > 0.5);
  CHECK(darkest(im, boxes[0], scale) < 0.25);
  CHECK(darkest(im, boxes[4], scale) < 0.25);   // the predicted token itself is ordinary text

  // SVG: the outline, the four dashed sides and the arrow in the marks' colour; through rsvg-convert
  // the outline is where the PNG has it.
  render_text({it}, opt, dir / "c.svg");
  const std::string svg = test::slurp(dir / "c.svg");
  CHECK(count(svg, svg_mark_stroke()) >= 6);
  CHECK(svg.find("stroke-dasharray") != std::string::npos);
  const std::string cmd = "rsvg-convert -z 2 '" + (dir / "c.svg").string() + "' -o '" + (dir / "svg.png").string() + "' 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
  const DecodedImage sv = read_image(dir / "svg.png");
  const double sv_scale = sv.width / list.width;   // rsvg: 96 px per inch, so 2 * 4/3 per point
  CHECK(sv_scale == doctest::Approx(2 * 96.0 / 72).epsilon(0.01));
  CHECK(is_mark(pixel(sv, q.x - 0.875, q.y + q.h / 2, sv_scale)));
  CHECK(is_mark(pixel(sv, (q.x + q.w / 2 + n.x + n.w / 2) / 2, q.y - 7, sv_scale)));

  // HTML: the caption, the query and next-token spans classed for their outlines.
  const std::string html = text_view_html({it}, opt);
  CHECK(html.find("<div class=\"h q\">query “sat” (position 3) → next token “on”</div>") != std::string::npos);
  CHECK(count(html, "<span class=\"t tq\"") == 1);
  CHECK(count(html, "<span class=\"t tn\"") == 1);
  CHECK(html.find("(query)\">sat</span>") != std::string::npos);

  // The same sentence from a bidirectional map: no marks at all, in pixels or SVG.
  TextViewItem plain = it;
  plain.query = -1;
  plain.next_token.clear();
  render_text({plain}, opt, dir / "e.png", {scale});
  CHECK(mark_pixels(read_image(dir / "e.png")) == 0);
  render_text({plain}, opt, dir / "e.svg");
  CHECK(test::slurp(dir / "e.svg").find(svg_mark_stroke()) == std::string::npos);
  CHECK(mark_pixels(im) > 100);
}

TEST_CASE("CLI: render text on a generated LM record marks the query and its next token; an encoder record stays plain") {
  const auto dir = test::temp_dir("render_text_lm_cli");
  const auto hf = test::source_dir() / "tests" / "data" / "hf";
  const auto runs = test::record_tiny_hf(dir, "relevance", "norms", "norms");
  REQUIRE_MESSAGE(runs[0].result.code == 0, runs[0].result.out);
  REQUIRE_MESSAGE(runs[1].result.code == 0, runs[1].result.out);
  const AttentionRecord lm = load_record(runs[0].file);
  for (const std::string tensor : {"decoder.relevance", "decoder.layer1.self"}) {
    CAPTURE(tensor);
    const std::string png = (dir / (tensor + ".png")).string(), svg = (dir / (tensor + ".svg")).string();
    for (const auto& out : {png, svg}) {
      auto r = test::run_cli("render text '" + runs[0].file + "' --tensor " + tensor + " --query 3 -o '" + out + "'");
      REQUIRE_MESSAGE(r.code == 0, r.out);
    }
    // The file's pixels against the layout of the same row.
    TextSelection sel;
    sel.tensor = tensor;
    sel.query = 3;
    const TextViewItem it = text_item(lm, sel);
    REQUIRE(it.query == 3);
    CHECK(it.next_token == lm.tokens.at("tokens").at(4));
    std::vector<TokenBox> boxes;
    layout_text({it}, {}, &boxes);
    const DecodedImage im = read_image(png);
    CHECK(is_mark(pixel(im, boxes[3].x - 0.875, boxes[3].y + boxes[3].h / 2, 2)));
    int right = 0;   // the dashes of the next token's right side
    for (double y = boxes[4].y; y < boxes[4].y + boxes[4].h; y += 0.5)
      right += is_mark(pixel(im, boxes[4].x + boxes[4].w + 0.625, y, 2));
    CHECK(right >= 3);
    CHECK(count(test::slurp(svg), svg_mark_stroke()) >= 6);
  }
  // bert-tiny (bidirectional): the same command draws no marks.
  const std::string esvg = (dir / "enc.svg").string(), epng = (dir / "enc.png").string();
  for (const auto& out : {esvg, epng}) {
    auto r = test::run_cli("render text '" + runs[1].file + "' --tensor encoder.layer0.self --query 1 -o '" + out + "'");
    REQUIRE_MESSAGE(r.code == 0, r.out);
  }
  CHECK(test::slurp(esvg).find(svg_mark_stroke()) == std::string::npos);
  CHECK(mark_pixels(read_image(epng)) == 0);
}
