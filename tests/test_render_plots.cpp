// Tests of the plot kinds: sizes, PNG signature, cell colours, SVG/PDF validity (rsvg-convert,
// pdftoppm), CJK glyphs, NaN cells, degenerate shapes (1x1, 1xN, 200x200), atomic writes, CLI.
#include "test_util.hpp"

#include <attnviz/error.hpp>
#include <attnviz/record/record.hpp>
#include <attnviz/render/render.hpp>

#include <doctest/doctest.h>

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#include <stb/stb_image.h>

#include <cmath>
#include <limits>
#include <algorithm>

using namespace attnviz;
using namespace attnviz::render;
using namespace attnviz::test;

namespace {

// A record with one [heads, q, k] tensor of smooth pseudo-random rows that sum to 1, and tokens.
AttentionRecord make_record(int heads, int q, int k, bool tokens = true) {
  AttentionRecord r;
  AttentionTensor t("decoder.layer0.cross", heads, q, k, tokens ? "target" : "", tokens ? "source" : "");
  for (int h = 0; h < heads; ++h)
    for (int i = 0; i < q; ++i) {
      double sum = 0;
      for (int j = 0; j < k; ++j) sum += t.at(h, i, j) = static_cast<float>(1.0 + std::sin(1.7 * i + 0.9 * j + h) + (i == j ? 3 : 0));
      for (int j = 0; j < k; ++j) t.at(h, i, j) = static_cast<float>(t.at(h, i, j) / sum);
    }
  r.tensors.push_back(t);
  AttentionTensor s("encoder.layer1.self", heads, k, k, tokens ? "source" : "", tokens ? "source" : "");
  for (size_t i = 0; i < s.data.size(); ++i) s.data[i] = static_cast<float>((i % 7) / 7.0);
  r.tensors.push_back(s);
  if (tokens) {
    for (int i = 0; i < q; ++i) r.tokens["target"].push_back("tgt" + std::to_string(i));
    for (int j = 0; j < k; ++j) r.tokens["source"].push_back(j == 0 ? "a_rather_long_token_that_needs_an_ellipsis" : "src" + std::to_string(j));
  }
  return r;
}

// A vision record: image [H, W], patch grid rows x cols, `prefix` CLS tokens, one tensor per layer.
AttentionRecord make_vision(int rows, int cols, int prefix, int H, int W, int layers = 2, int heads = 2) {
  AttentionRecord r;
  RecordImage im;
  im.height = H, im.width = W, im.patch_rows = rows, im.patch_cols = cols, im.prefix_tokens = prefix;
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) im.pixels.push_back(static_cast<float>((x + y) % 5 == 0));
  r.image = im;
  int n = prefix + rows * cols;
  for (int l = 0; l < layers; ++l) {
    AttentionTensor t("vit.layer" + std::to_string(l) + ".self", heads, n, n);
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j) t.at(h, i, j) = static_cast<float>(1.0 / n + 0.01 * ((i + j + h + l) % 3));
    r.tensors.push_back(t);
  }
  r.metadata["label"] = "7";
  r.metadata["prediction"] = "1";
  return r;
}

bool is_png(const std::string& bytes) { return bytes.size() > 8 && bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0; }

// Count of filled cell shapes in cairo's SVG output (stroke:none + fill).
int svg_filled_paths(const std::string& svg) {
  int n = 0;
  for (size_t p = svg.find("<path"); p != std::string::npos; p = svg.find("<path", p + 1)) {
    size_t end = svg.find('>', p);
    std::string el = svg.substr(p, end - p);
    if (el.find("stroke:none") != std::string::npos && el.find("fill:rgb") != std::string::npos) ++n;
  }
  return n;
}

HeatmapOptions bare() {
  HeatmapOptions o;
  o.labels = false;
  o.colorbar = false;
  o.title = "-";
  o.values_max_size = 0;
  return o;
}

}  // namespace

TEST_CASE("heatmap: PNG size, signature, and cell-centre colours equal the colormap colour") {
  AttentionRecord rec = make_record(2, 5, 6);
  LabelledMatrix m = select_matrix(rec, {"decoder.layer0.cross", 1, false});
  HeatmapOptions o = bare();
  o.cell = 10;
  o.cmap = "magma";
  DrawList dl = layout_heatmap(m, o);
  PaintOptions po;
  po.scale = 2;
  std::string png = paint_to_bytes(dl, Format::Png, po);
  CHECK(is_png(png));
  Raster r = paint_to_raster(dl, po);
  CHECK(r.width == static_cast<int>(std::ceil(dl.width * 2)));
  CHECK(r.height == static_cast<int>(std::ceil(dl.height * 2)));
  // The first 5x6 Rect ops are the cells, row-major.
  std::vector<Rect> cells;
  for (const auto& op : dl.ops)
    if (auto* rc = std::get_if<Rect>(&op); rc && rc->stroke_width == 0 && cells.size() < 30) cells.push_back(*rc);
  REQUIRE(cells.size() == 30);
  float lo = m.values.minCoeff(), hi = m.values.maxCoeff();
  const Colormap& cm = Colormap::get("magma");
  for (int q = 0; q < 5; ++q)
    for (int k = 0; k < 6; ++k) {
      const Rect& c = cells[q * 6 + k];
      CHECK(c.w == doctest::Approx(10));
      auto px = r.pixel(static_cast<int>((c.x + c.w / 2) * 2), static_cast<int>((c.y + c.h / 2) * 2));
      auto want = cm.at8((m.values(q, k) - lo) / (hi - lo));  // computed here, not by the renderer
      for (int ch = 0; ch < 3; ++ch) CHECK(std::abs(int(px[ch]) - int(want[ch])) <= 1);
      CHECK(px[3] == 255);
    }
}

TEST_CASE("the PNG encoder round-trips through a third-party decoder (stb_image), opaque and with alpha") {
  AttentionRecord rec = make_record(1, 12, 9);
  for (int variant = 0; variant < 4; ++variant) {
    bool transparent = variant & 1;
    CAPTURE(variant);
    DrawList dl = layout_heatmap(select_matrix(rec, {}), HeatmapOptions{});
    if (transparent) dl.background = Color{1, 1, 1, 0.25};
    PaintOptions po;
    po.scale = 1.5;
    po.small_png = variant & 2;
    std::string png = paint_to_bytes(dl, Format::Png, po);
    Raster want = paint_to_raster(dl, po);
    int w = 0, h = 0, n = 0;
    unsigned char* got = stbi_load_from_memory(reinterpret_cast<const unsigned char*>(png.data()),
                                               static_cast<int>(png.size()), &w, &h, &n, 4);
    REQUIRE(got != nullptr);
    CHECK(w == want.width);
    CHECK(h == want.height);
    CHECK(n == (transparent ? 4 : 3));
    long bad = 0;
    for (size_t i = 0; i < want.rgba.size(); ++i) bad += std::abs(int(got[i]) - int(want.rgba[i])) > 1;
    CHECK(bad == 0);
    stbi_image_free(got);
  }
}

TEST_CASE("heatmap over 10,000 cells: one image, cells snapped to whole half points, colours of the colormap") {
  // 650 x 650: automatic cells would be 2400/650 = 3.69 pt; snapped to 3.5 pt, 7 whole pixels at
  // scale 2, so every cell centre shows its own colour.
  const int n = 650;
  LabelledMatrix m;
  m.values.resize(n, n);
  for (int q = 0; q < n; ++q)
    for (int k = 0; k < n; ++k) m.values(q, k) = static_cast<float>(((q * 7 + k * 13) % 101) / 100.0);
  m.values(5, 9) = std::numeric_limits<float>::quiet_NaN();
  DrawList dl = layout_heatmap(m, bare());
  const Image* im = nullptr;
  for (const auto& op : dl.ops)
    if (const auto* i = std::get_if<Image>(&op)) im = i;
  REQUIRE(im != nullptr);
  CHECK(im->w == doctest::Approx(n * 3.5));
  CHECK(im->h == doctest::Approx(n * 3.5));
  PaintOptions po;
  po.scale = 2;
  Raster r = paint_to_raster(dl, po);
  const Colormap& cm = Colormap::get("viridis");
  float lo = 0, hi = 1;  // the finite values span 0..1
  for (int q : {0, 5, 64, 333, 649})
    for (int k : {0, 9, 100, 648, 649}) {
      CAPTURE(q);
      CAPTURE(k);
      auto px = r.pixel(static_cast<int>((im->x + (k + 0.5) * 3.5) * 2), static_cast<int>((im->y + (q + 0.5) * 3.5) * 2));
      auto want = std::isnan(m.values(q, k)) ? std::array<std::uint8_t, 3>{255, 0, 255}
                                             : cm.at8((m.values(q, k) - lo) / (hi - lo));
      for (int ch = 0; ch < 3; ++ch) CHECK(std::abs(int(px[ch]) - int(want[ch])) <= 1);
    }
}

TEST_CASE("PNG encoder: a big image coded in bands on several threads decodes to the same pixels as on one") {
  // 2400 x 1800 px: 13 MB of RGB rows, so 3 bands with 3 threads. Flat rows (filter "up", coded
  // without reading them) at the top and across the band boundaries, noise (every byte a literal)
  // elsewhere, in both coders, opaque and with alpha.
  DrawList dl;
  dl.width = 2400, dl.height = 1800;
  Image noise{0, 300, 2400, 1400, 600, 350, std::vector<std::uint8_t>(600 * 350 * 4), false};
  std::uint32_t seed = 12345;
  for (auto& b : noise.rgba) seed = seed * 1664525u + 1013904223u, b = static_cast<std::uint8_t>(seed >> 24);
  for (size_t i = 3; i < noise.rgba.size(); i += 4) noise.rgba[i] = 255;
  dl.add(Rect{0, 0, 2400, 300, Color::rgb8(10, 200, 30)});
  dl.add(std::move(noise));
  for (int variant = 0; variant < 4; ++variant) {
    CAPTURE(variant);
    const bool transparent = variant & 1;
    dl.background = transparent ? Color{1, 1, 1, 0.5} : kWhite;
    PaintOptions po;
    po.scale = 1;
    po.small_png = variant & 2;
    po.threads = 3;
    const std::string banded = paint_to_bytes(dl, Format::Png, po);
    po.threads = 1;
    const std::string one = paint_to_bytes(dl, Format::Png, po);
    const Raster want = paint_to_raster(dl, po);
    for (const std::string* png : {&banded, &one}) {
      int w = 0, h = 0, n = 0;
      unsigned char* got = stbi_load_from_memory(reinterpret_cast<const unsigned char*>(png->data()),
                                                 static_cast<int>(png->size()), &w, &h, &n, 4);
      REQUIRE(got != nullptr);
      CHECK(w == 2400);
      CHECK(h == 1800);
      CHECK(n == (transparent ? 4 : 3));
      long bad = 0;
      for (size_t i = 0; i < want.rgba.size(); ++i) bad += std::abs(int(got[i]) - int(want.rgba[i])) > 1;
      CHECK(bad == 0);
      stbi_image_free(got);
    }
    // The banded stream is not the one-thread stream (each band restarts its block).
    CHECK(banded != one);
  }
}

TEST_CASE("heatmap: SVG has one filled shape per cell and rsvg-convert accepts it; PDF passes pdftoppm") {
  fs::path dir = temp_dir("svgpdf");
  AttentionRecord rec = make_record(1, 7, 9);
  render_heatmap(rec, {}, bare(), dir / "h.svg");
  std::string svg = slurp(dir / "h.svg");
  CHECK(svg.find("<svg") != std::string::npos);
  CHECK(svg_filled_paths(svg) == 7 * 9);
  // The full figure (labels, values, colorbar) through third-party renderers.
  render_heatmap(rec, {}, HeatmapOptions{}, dir / "full.svg");
  render_heatmap(rec, {}, HeatmapOptions{}, dir / "full.pdf");
  CHECK(slurp(dir / "full.pdf").rfind("%PDF-", 0) == 0);
  std::string cmd1 = "rsvg-convert '" + (dir / "full.svg").string() + "' -o '" + (dir / "svg.png").string() + "' 2>&1";
  std::string cmd2 = "pdftoppm -r 30 -png '" + (dir / "full.pdf").string() + "' '" + (dir / "pdf").string() + "' 2>&1";
  CHECK(std::system(cmd1.c_str()) == 0);
  CHECK(std::system(cmd2.c_str()) == 0);
  CHECK(is_png(slurp(dir / "svg.png")));
  CHECK(is_png(slurp(dir / "pdf-1.png")));
}

TEST_CASE("Chinese tokens render with real glyphs (no missing-glyph boxes) and leave ink") {
  AttentionRecord rec = load_record(sample("chinese_4x4.safetensors"));
  const auto* src = rec.axis_tokens("source");
  REQUIRE(src);
  TextStyle st;
  for (const auto& tok : *src) CHECK(has_all_glyphs(tok, st));
  CHECK_FALSE(has_all_glyphs("\xee\x80\x80", st));  // U+E000 (private use): the check can fail
  // Against a blank run (the same draw list without the CJK label texts), each label adds ink in
  // its own place.
  LabelledMatrix m = select_matrix(rec, {});
  HeatmapOptions o;
  o.colorbar = false;
  DrawList with = layout_heatmap(m, o), without = with;
  std::erase_if(without.ops, [&](const DrawOp& op) {
    auto* t = std::get_if<Text>(&op);
    return t && std::find(src->begin(), src->end(), t->text) != src->end();
  });
  REQUIRE(without.ops.size() == with.ops.size() - src->size());
  Raster a = paint_to_raster(with, {3.0}), b = paint_to_raster(without, {3.0});
  for (const auto& op : with.ops) {
    auto* t = std::get_if<Text>(&op);
    if (!t || std::find(src->begin(), src->end(), t->text) == src->end()) continue;
    CAPTURE(t->text);
    // The label is rotated 90 degrees and right-aligned at its anchor under the matrix, so it occupies
    // the box from the anchor downward by its width.
    TextExtent e = measure_text(t->text, t->style);
    int dark = 0;
    for (int y = int(3 * t->at.y) - 2; y < int(3 * (t->at.y + e.width)) + 2; ++y)
      for (int x = int(3 * (t->at.x - e.height / 2)); x <= int(3 * (t->at.x + e.height / 2)); ++x) {
        if (x < 0 || y < 0 || x >= a.width || y >= a.height) continue;
        dark += a.pixel(x, y)[0] < 140 && b.pixel(x, y)[0] > 200;
      }
    CHECK(dark >= 3);
  }
}

TEST_CASE("NaN and Inf cells are drawn magenta and counted") {
  AttentionRecord rec = make_record(1, 3, 3);
  rec.tensors[0].at(0, 1, 1) = std::numeric_limits<float>::quiet_NaN();
  rec.tensors[0].at(0, 2, 0) = std::numeric_limits<float>::infinity();
  LabelledMatrix m = select_matrix(rec, {});
  HeatmapOptions o = bare();
  o.cell = 20;
  DrawList dl = layout_heatmap(m, o);
  int hatched = 0;
  bool note = false;
  for (const auto& op : dl.ops) {
    if (auto* r = std::get_if<Rect>(&op); r && r->hatched && r->fill == kNonFinite) ++hatched;
    if (auto* t = std::get_if<Text>(&op); t && t->text.find("2 non-finite cells") != std::string::npos) note = true;
  }
  CHECK(hatched == 2);
  CHECK(note);
  Raster r = paint_to_raster(dl, {1.0});
  // Some pixel of the NaN cell is pure magenta.
  bool magenta = false;
  for (const auto& op : dl.ops)
    if (auto* c = std::get_if<Rect>(&op); c && c->hatched)
      for (int y = int(c->y) + 1; y < int(c->y + c->h) - 1; ++y)
        for (int x = int(c->x) + 1; x < int(c->x + c->w) - 1; ++x) {
          auto p = r.pixel(x, y);
          magenta |= p[0] == 255 && p[1] == 0 && p[2] == 255;
        }
  CHECK(magenta);
}

TEST_CASE("a NaN cell's value label sits on a white plate, black text, so it reads over the hatching") {
  AttentionRecord rec = make_record(1, 3, 3);
  rec.tensors[0].at(0, 1, 1) = std::numeric_limits<float>::quiet_NaN();
  HeatmapOptions o = bare();
  o.cell = 40;
  o.values_max_size = 10;
  DrawList dl = layout_heatmap(select_matrix(rec, {}), o);
  const Rect* cell = nullptr;
  const Rect* plate = nullptr;
  const Text* label = nullptr;
  for (const auto& op : dl.ops) {
    if (auto* r = std::get_if<Rect>(&op); r && r->hatched) cell = r;
    else if (r && cell && r->fill == kWhite) plate = r;
    if (auto* t = std::get_if<Text>(&op); t && t->text == "NaN") label = t;
  }
  REQUIRE(cell);
  REQUIRE(plate);
  REQUIRE(label);
  CHECK(label->color == kBlack);
  // The plate is inside the cell and centred on the label.
  CHECK(plate->x > cell->x);
  CHECK(plate->x + plate->w < cell->x + cell->w);
  CHECK(plate->x + plate->w / 2 == doctest::Approx(label->at.x));
  CHECK(plate->y + plate->h / 2 == doctest::Approx(label->at.y));
}

TEST_CASE("all plot kinds render 1x1, 1xN and 200x200 tensors to PNG, SVG and PDF") {
  fs::path dir = temp_dir("shapes");
  struct Shape {
    int q, k, prows, pcols;
  };
  for (Shape s : {Shape{1, 1, 1, 1}, Shape{1, 9, 1, 9}, Shape{200, 200, 10, 20}}) {
    CAPTURE(s.q);
    CAPTURE(s.k);
    AttentionRecord rec = make_record(2, s.q, s.k);
    std::string tag = std::to_string(s.q) + "x" + std::to_string(s.k);
    for (const char* ext : {".png", ".svg", ".pdf"}) {
      render_heatmap(rec, {}, HeatmapOptions{}, dir / ("heat" + tag + ext));
      render_grid(rec, GridOptions{}, dir / ("grid" + tag + ext));
      render_lines(rec, "", LinesOptions{}, dir / ("lines" + tag + ext));
      CHECK(fs::file_size(dir / ("heat" + tag + ext)) > 100);
    }
    // Overlay: keys = rows * cols patches, no prefix.
    AttentionRecord vis = make_vision(s.prows, s.pcols, 0, s.prows * 2, s.pcols * 2, 1, 1);
    OverlaySelection sel;
    sel.query = 0;
    render_overlay(overlay_panels({vis}, sel), OverlayOptions{}, dir / ("overlay" + tag + ".png"));
    CHECK(is_png(slurp(dir / ("overlay" + tag + ".png"))));
  }
  // The 200x200 heatmap is not absurdly large and stays a readable picture (cells >= 4 pt).
  Raster big = paint_to_raster(layout_heatmap(select_matrix(make_record(1, 200, 200), {}), HeatmapOptions{}), {1.0});
  CHECK(big.width >= 800);
  CHECK(big.width < 1400);
}

TEST_CASE("overlay: bilinear upsampling puts the map's colour at patch centres; strips and grids") {
  AttentionRecord rec = make_vision(2, 2, 1, 8, 8);
  OverlaySelection sel;
  sel.query = 0;
  sel.head = 1;
  Mat map = patch_map(rec, sel);
  REQUIRE(map.rows() == 2);
  REQUIRE(map.cols() == 2);
  CHECK(map(0, 0) == doctest::Approx(rec.tensors[1].at(1, 0, 1)));  // default: last layer, keys after CLS
  CHECK(map(1, 1) == doctest::Approx(rec.tensors[1].at(1, 0, 4)));
  // Map with a single hot patch: at its centre the blend is alpha * top colour + (1-alpha) * grey.
  Mat hot = Mat::Zero(2, 2);
  hot(0, 1) = 1;
  RecordImage im = *rec.image;
  std::fill(im.pixels.begin(), im.pixels.end(), 0.0f);
  OverlayOptions o;
  o.alpha = 0.5;
  Raster r = blend_overlay(im, hot, {0, 1}, o, 42);  // patch centres fall on pixel centres 10 and 31
  CHECK(r.width == 42);
  auto top = Colormap::get(o.cmap).at8(1.0), bottom = Colormap::get(o.cmap).at8(0.0);
  auto px = r.pixel(31, 10);  // centre of patch (0, 1)
  for (int c = 0; c < 3; ++c) CHECK(std::abs(px[c] - top[c] * 0.5) <= 1.5);
  auto mid = r.pixel(20, 10);  // between a cold and a hot patch centre: smooth, not blocky
  auto midc = Colormap::get(o.cmap).at8(20.5 / 42 * 2 - 0.5);
  for (int c = 0; c < 3; ++c) CHECK(std::abs(mid[c] - midc[c] * 0.5) <= 1.5);
  auto cold = r.pixel(10, 31);
  for (int c = 0; c < 3; ++c) CHECK(std::abs(cold[c] - bottom[c] * 0.5) <= 1.5);

  auto strip = overlay_head_strip(rec, sel);
  CHECK(strip.size() == 4);  // image, head 0, head 1, mean
  std::vector<AttentionRecord> many(12, rec);
  auto panels = overlay_panels(many, sel);
  CHECK(panels[0].caption == "true 7 · pred 1");
  CHECK(panels[0].caption_color.r > 0.5);  // wrong prediction in red
  DrawList dl = layout_overlay(panels, o);
  CHECK(dl.width > 0);
  AttentionRecord plain = make_record(1, 3, 3);
  CHECK_THROWS_AS(patch_map(plain, sel), UsageError);
}

TEST_CASE("compose places panels side by side with captions") {
  AttentionRecord rec = make_record(1, 4, 4);
  DrawList a = layout_heatmap(select_matrix(rec, {}), HeatmapOptions{});
  DrawList fig = compose({{a, "additive"}, {a, "dot"}, {a, "general"}, {a, "scaled-dot"}}, {0, 16, "four kinds"});
  CHECK(fig.width >= 4 * a.width);
  CHECK(fig.height > a.height);
  CHECK(is_png(paint_to_bytes(fig, Format::Png)));
}

TEST_CASE("writes are atomic and bad requests fail cleanly") {
  fs::path dir = temp_dir("atomic");
  AttentionRecord rec = make_record(1, 3, 3);
  CHECK_THROWS_AS(render_heatmap(rec, {}, {}, dir / "x.bmp"), UsageError);
  CHECK_THROWS_AS(render_heatmap(rec, {"nope", 0, false}, {}, dir / "x.png"), UsageError);
  CHECK_THROWS_AS(render_heatmap(rec, {"", 5, false}, {}, dir / "x.png"), UsageError);
  HeatmapOptions bad;
  bad.cmap = "rainbow";
  CHECK_THROWS_AS(render_heatmap(rec, {}, bad, dir / "x.png"), UsageError);
  CHECK(count_files(dir) == 0);
  // A failing encoder (absurd size) leaves neither the target nor a temporary behind.
  DrawList huge;
  huge.width = huge.height = 1e6;
  CHECK_THROWS(paint_to_file(huge, dir / "huge.png"));
  CHECK(count_files(dir) == 0);
}

TEST_CASE("CLI: render heatmap/grid/lines/overlay, exit codes") {
  fs::path dir = temp_dir("cli");
  std::string s = "'" + sample("alignment_6x7.safetensors").string() + "'";
  std::string gold = "'" + sample("alignment_6x7.gold").string() + "'";
  auto out = [&](const std::string& f) { return "'" + (dir / f).string() + "'"; };
  auto r = run_cli("render heatmap " + s + " --tensor decoder.layer0.cross --gold " + gold + " -o " + out("h.png"));
  CHECK_MESSAGE(r.code == 0, r.out);
  CHECK(is_png(slurp(dir / "h.png")));
  r = run_cli("render heatmap " + s + " --mean-heads --norm row --cmap cividis --dpi 72 -o " + out("h.pdf"));
  CHECK_MESSAGE(r.code == 0, r.out);
  r = run_cli("render grid " + s + " --tensors encoder --heads 1 --layers 0,1 -o " + out("g.svg"));
  CHECK_MESSAGE(r.code == 0, r.out);
  r = run_cli("render lines " + s + " --tensor decoder.layer0.cross --heads 0,1 --threshold 0.1 -o " + out("l.png"));
  CHECK_MESSAGE(r.code == 0, r.out);
  fs::path vis = dir / "vis.safetensors";
  save_records(vis, {make_vision(4, 4, 1, 28, 28), make_vision(4, 4, 1, 28, 28)});
  r = run_cli("render overlay '" + vis.string() + "' --all --mean-heads -o " + out("o.png"));
  CHECK_MESSAGE(r.code == 0, r.out);
  r = run_cli("render overlay '" + vis.string() + "' --strip -o " + out("strip.png"));
  CHECK_MESSAGE(r.code == 0, r.out);
  // (This check sat behind `__has_include(<attnviz/saliency.hpp>)`, a path that stopped existing
  // when the headers moved to include/attnviz/analysis/: --method rollout had silently become a
  // usage error.)
  r = run_cli("render overlay '" + vis.string() + "' --all --method rollout -o " + out("rollout.png"));
  CHECK_MESSAGE(r.code == 0, r.out);
  CHECK(run_cli("render overlay '" + vis.string() + "' --method magic -o " + out("bad.png")).code == 1);
  int files = count_files(dir);
  // Usage errors exit 1, bad input exits 2, and nothing is written.
  CHECK(run_cli("render heatmap " + s + " -o " + out("bad.gif")).code == 1);
  CHECK(run_cli("render heatmap " + s + " --head 9 -o " + out("bad.png")).code == 1);
  CHECK(run_cli("render heatmap " + s + " --cmap jet -o " + out("bad.png")).code == 1);
  CHECK(run_cli("render overlay " + s + " -o " + out("bad.png")).code == 1);
  spit(dir / "broken.gold", "0-0 zz\n");
  CHECK(run_cli("render heatmap " + s + " --gold " + out("broken.gold") + " -o " + out("bad.png")).code == 2);
  spit(dir / "junk.safetensors", "not a record");
  CHECK(run_cli("render heatmap " + out("junk.safetensors") + " -o " + out("bad.png")).code == 2);
  CHECK(count_files(dir) == files + 2);  // only the two inputs written above (no bad.png)
}

TEST_CASE("line chart: one polyline per series in its colour, legend, bad input refused") {
  // Two series over x in [0, 1], y in [0, 1]: the plot area is 200 x 100 points at (58, 12).
  LineSeries a{"a", {0, 0.5, 1}, {1, 0.5, 0}, Color::rgb8(255, 0, 0)};
  LineSeries b{"b", {0, 1}, {0.25, 0.25}, Color::rgb8(0, 0, 255)};
  LineChartOptions opt;
  opt.width = 200, opt.height = 100, opt.ymin = 0, opt.ymax = 1;
  DrawList dl = layout_line_chart({a, b}, opt);
  int lines = 0;
  for (const auto& op : dl.ops)
    if (const auto* p = std::get_if<Polygon>(&op); p && !p->closed) {
      ++lines;
      CHECK((p->stroke == a.color || p->stroke == b.color));
    }
  CHECK(lines == 2);
  // Pixels: series b's horizontal line at y = 0.25 is blue in the middle of the plot (x = 0.75,
  // away from series a); the point (0.5, 0.5) of series a is red. PNG at 1 pixel per point.
  Raster r = paint_to_raster(dl, {.scale = 1});
  const double left = 58, top = 12;
  auto px = r.pixel(static_cast<int>(left + 0.75 * 200), static_cast<int>(top + 100 - 0.25 * 100));
  CHECK(px[2] > 150);
  CHECK(px[0] < 100);
  auto pa = r.pixel(static_cast<int>(left + 0.5 * 200), static_cast<int>(top + 100 - 0.5 * 100));
  CHECK(pa[0] > 150);
  CHECK(pa[2] < 100);
  CHECK_THROWS_AS(layout_line_chart({}, opt), std::invalid_argument);
  CHECK_THROWS_AS(layout_line_chart({LineSeries{"x", {0, 1}, {1}}}, opt), std::invalid_argument);
}

namespace {
bool has_text(const attnviz::render::DrawList& dl, const std::string& s) {
  for (const auto& op : dl.ops)
    if (auto* t = std::get_if<attnviz::render::Text>(&op); t && t->text == s) return true;
  return false;
}
}  // namespace

TEST_CASE("colourbars name what is drawn: norm-based and value-zeroing tensors are not 'attention weight'") {
  using namespace attnviz::render;
  AttentionRecord rec;
  for (const char* name : {"encoder.layer0.self", "encoder.layer0.self.norm", "encoder.layer0.self.norm_sum",
                           "encoder.layer0.self.mixing", "encoder.mixing_rollout", "decoder.relevance_cross",
                           "decoder.lrp_relevance_self", "decoder.relevance"}) {
    AttentionTensor t(name, 1, 2, 2);
    t.data = {0.5f, 0.5f, 0.25f, 0.75f};
    rec.tensors.push_back(t);
  }
  CHECK(value_quantity("encoder.layer0.self") == "");
  const std::pair<const char*, const char*> want[] = {{"encoder.layer0.self", "attention weight"},
                                                     {"encoder.layer0.self.norm", "norm ‖α f(x)‖"},
                                                     {"encoder.layer0.self.norm_sum", "norm ‖Σ α f(x) W_O‖"},
                                                     {"encoder.layer0.self.mixing", "context mixing (value zeroing)"},
                                                     {"encoder.mixing_rollout", "mixing rollout (value zeroing)"},
                                                     {"decoder.relevance_cross", "relevance (∇A ⊙ A, rolled out)"},
                                                     {"decoder.lrp_relevance_self", "relevance (LRP ⊙ ∇A, rolled out)"},
                                                     {"decoder.relevance", "relevance (∇A ⊙ A, rolled out)"}};
  for (const auto& [name, label] : want) {
    Selection sel;
    sel.tensor = name;
    DrawList dl = layout_heatmap(select_matrix(rec, sel), HeatmapOptions{});
    CHECK_MESSAGE(has_text(dl, label), name);
    if (std::string(label) != "attention weight") CHECK_FALSE(has_text(dl, "attention weight"));
  }
  // Grid: one kind of tensor names it; a mixture says so.
  GridOptions g;
  g.tensors = "self.mixing";
  CHECK(has_text(layout_grid(rec, g), "context mixing (value zeroing)"));
  g.tensors = "self.norm";
  CHECK(has_text(layout_grid(rec, g), "value (mixed kinds)"));
  // Without --tensors: only the attention weights (the other kinds would share their colour bar).
  g.tensors = "";
  const DrawList all = layout_grid(rec, g);
  CHECK(has_text(all, "attention weight"));
  CHECK_FALSE(has_text(all, "value (mixed kinds)"));
  AttentionRecord derived_only;
  for (const auto& t : rec.tensors)
    if (!value_quantity(t.name).empty()) derived_only.tensors.push_back(t);
  CHECK(has_text(layout_grid(derived_only, g), "value (mixed kinds)"));   // nothing else to show
  g.tensors = "relevance";
  CHECK(has_text(layout_grid(rec, g), "value (mixed kinds)"));   // two relevance kinds
  g.tensors = "relevance_cross";
  CHECK(has_text(layout_grid(rec, g), "relevance (∇A ⊙ A, rolled out)"));
  DrawList only_weights = layout_grid(AttentionRecord{{rec.tensors[0]}}, {});
  CHECK(has_text(only_weights, "attention weight"));
}
