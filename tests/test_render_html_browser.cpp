// The interactive HTML pages in a real browser: Debian's chromium, headless, driven over the DevTools
// pipe by tests/browser/check_pages.py. Every page: no console error, no network request, the
// expected heads/layers/tokens in the DOM, real mouse events (hover isolates one token's lines, a
// hovered cell shows its value, wheel zooms, drag pans), a save, and a screenshot that is not blank.
// Exits 77 (CTest: Skipped) when Chromium or python3 is absent or cannot start.
#include <attnviz/record/record.hpp>
#include <attnviz/render/html.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <unistd.h>

#include "browser/html_records.hpp"
#include "test_util.hpp"

using namespace attnviz;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string find_program(const std::vector<std::string>& names) {
  if (const char* env = std::getenv("ATTNVIZ_CHROMIUM"); env && *env && names.front() == "chromium") return env;
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  for (const auto& n : names) {
    size_t a = 0;
    while (a <= p.size()) {
      size_t b = p.find(':', a);
      if (b == std::string::npos) b = p.size();
      fs::path cand = fs::path(p.substr(a, b - a)) / n;
      if (::access(cand.c_str(), X_OK) == 0) return cand.string();
      a = b + 1;
    }
  }
  return "";
}

[[noreturn]] void skip(const std::string& why) {
  std::cerr << "SKIPPED: " << why << "\n";
  std::exit(77);
}

// Runs check_pages.py on KIND=PAGE pairs; the report, or a skip when the browser cannot run.
json run_browser(const fs::path& dir, const std::vector<std::pair<std::string, fs::path>>& pages) {
  std::string chromium = find_program({"chromium", "chromium-browser", "google-chrome"});
  if (chromium.empty()) skip("no Chromium on PATH (Debian package chromium; scripts/setup --test installs it)");
  std::string python = find_program({"python3"});
  if (python.empty()) skip("no python3 on PATH (it drives the browser)");
  std::string cmd = "'" + python + "' '" + (test::source_dir() / "tests/browser/check_pages.py").string() +
                    "' --chromium '" + chromium + "' --out '" + (dir / "shots").string() + "'";
  for (const auto& [kind, page] : pages) cmd += " '" + kind + "=" + page.string() + "'";
  cmd += " 2>'" + (dir / "stderr.txt").string() + "'";
  const auto [code, out] = test::run_shell(cmd);
  std::string err = test::slurp(dir / "stderr.txt");
  if (code == 77) skip(err);
  INFO(err);
  REQUIRE(code == 0);
  return json::parse(out);
}

void check_clean(const json& page) {
  INFO(page["page"].get<std::string>(), " as ", page["kind"].get<std::string>());
  CHECK(page["ready"] == "1");
  CHECK_MESSAGE(page["errors"].empty(), page["errors"].dump());
  CHECK_MESSAGE(page["requests"].empty(), page["requests"].dump());
  CHECK(page["screenshot_colours"].get<int>() > 20);  // a blank (or one-colour) page has 1-2
}

}  // namespace

TEST_CASE("every view in headless Chromium: clean load, DOM, hover, zoom, save, screenshot") {
  fs::path dir = test::temp_dir("pages");
  // The translation sample through the CLI; the rest through the library.
  auto r = test::run_cli("render html '" + test::sample("alignment_6x7.safetensors").string() + "' -o '" +
                         (dir / "align.html").string() + "'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  render::HtmlOptions opt;
  opt.source = "text.safetensors";
  render::render_html(test::text_record(), opt, dir / "text.html");
  opt.source = "image.safetensors";
  render::HtmlOptions img = opt;
  img.image_maps.push_back({"rollout", 7, 7, std::vector<float>(49, 0.f)});
  for (int i = 0; i < 49; ++i) img.image_maps[0].values[i] = static_cast<float>((i % 7) * (i / 7));
  render::render_html(test::image_record(), img, dir / "image.html");
  opt.source = "long.safetensors";
  render::render_html(test::self_record(1, 1, 2048), opt, dir / "long.html");
  AttentionRecord cut = test::self_record(3, 2, 300);
  opt.source = "cut.safetensors";
  render::HtmlReport full;
  render::html_page(cut, opt, &full);
  opt.max_mib = (full.bytes - full.data_bytes / 2.0) / (1024.0 * 1024.0);
  render::HtmlReport rep = render::render_html(cut, opt, dir / "cut.html");
  REQUIRE(!rep.left_out.empty());

  json report = run_browser(dir, {{"head", dir / "align.html"},  {"model", dir / "align.html"},
                                  {"text", dir / "text.html"},   {"image", dir / "image.html"},
                                  {"matrix", dir / "long.html"}, {"model", dir / "cut.html"}});
  MESSAGE("browser: ", report["browser"].get<std::string>());
  const auto& pages = report["pages"];
  REQUIRE(pages.size() == 6);
  for (const auto& p : pages) check_clean(p);
  // One browser run for the whole case (doctest SUBCASEs would re-run it once per subcase).

  {  // "head view: tokens, head boxes, hover isolates one query's lines, unticking a head removes its lines"
    INFO("head view: tokens, head boxes, hover isolates one query's lines, unticking a head removes its lines");
    const auto& h = pages[0];
    CHECK(h["views"] == json({"head", "model", "matrix"}));
    CHECK(h["tokens_q"] == 6);  // decoder.layer0.cross of the sample: 6 target x 7 source tokens
    CHECK(h["tokens_k"] == 7);
    CHECK(h["head_boxes"] == 2);
    CHECK(h["lines_all"]["q"].size() == 6);
    CHECK(h["lines_all"]["h"].size() == 2);
    CHECK(h["lines_hover"]["q"] == json({h["hover_query"]}));
    CHECK(h["lines_hover"]["n"].get<int>() > 0);
    CHECK(h["lines_hover"]["n"].get<int>() < h["lines_all"]["n"].get<int>());
    CHECK(h["lines_after"] == h["lines_all"]["n"]);
    CHECK(h["lines_without_h0"]["h"] == json({1}));
    CHECK(h["readout_hover"].get<std::string>().find("Katze") != std::string::npos);
    CHECK(h["save_svg"]["type"] == "svg");
    CHECK(h["save_svg"]["bytes"].get<int>() > 1000);
    CHECK(h["save_png"]["bytes"].get<int>() > 1000);
  }
  {  // "model view: one thumbnail per layer x head, click opens it large, hover shows the value"
    INFO("model view: one thumbnail per layer x head, click opens it large, hover shows the value");
    const auto& m = pages[1];
    CHECK(m["thumbs"] == 6);  // 3 tensors x 2 heads
    CHECK(m["rows"] == 3);
    CHECK(m["thumbs_missing"] == 0);
    CHECK(m["thumb_nonwhite"].get<int>() > 0);
    CHECK(m["opened"] == json({2, 1}));
    CHECK(m["hover_cell"].is_array());
    CHECK(m["readout_hover"].get<std::string>().find("query") != std::string::npos);
    CHECK(m["matrix_nonwhite"].get<int>() > 1000);
    CHECK(m["matrix_nonwhite_again"].get<int>() > 1000);
    CHECK(m["save_png"]["bytes"].get<int>() > 1000);
  }
  {  // "text view: one shaded span per token, hover shows the weight"
    INFO("text view: one shaded span per token, hover shows the weight");
    const auto& t = pages[2];
    CHECK(t["views"].back() == "text");
    CHECK(t["tokens"] == 9);
    CHECK(t["readout_hover"].get<std::string>().find("weight") != std::string::npos);
    CHECK(t["save_svg"]["bytes"].get<int>() > 500);
  }
  {  // "image view: overlay drawn, the opacity slider changes it, methods listed"
    INFO("image view: overlay drawn, the opacity slider changes it, methods listed");
    const auto& i = pages[3];
    CHECK(i["methods"] == json({"cls", "map0"}));
    CHECK(i["canvas_nonwhite"].get<int>() > 1000);
    CHECK(i["sum_before"] != i["sum_after_alpha"]);
    CHECK(i["readout_hover"].get<std::string>().find("patch") != std::string::npos);
    CHECK(i["save_png"]["bytes"].get<int>() > 1000);
  }
  {  // "matrix view at 2048 tokens: wheel zooms until labels show, drag pans, draws stay fast"
    INFO("matrix view at 2048 tokens: wheel zooms until labels show, drag pans, draws stay fast");
    const auto& x = pages[4];
    CHECK(x["size"] == json({2048, 2048}));
    CHECK(x["matrix_nonwhite"].get<int>() > 1000);
    CHECK(x["scale_after_zoom"].get<double>() > 10 * x["scale_before"].get<double>());
    CHECK(x["labels_when_zoomed"] == true);
    CHECK(x["offset_after_pan"][0].get<double>() > 0);
    CHECK(x["readout_hover"].get<std::string>().find("tok") != std::string::npos);
    CHECK(x["readout_hover"] != x["readout_hover2"]);
    MESSAGE("2048x2048 draw: median ", x["draw_ms_median"], " ms, max ", x["draw_ms_max"], " ms over ", x["draws"], " frames");
    CHECK(x["draw_ms_median"].get<double>() < 16.0);  // one 60 Hz frame
  }
  {  // "a page cut by --max-mib names what it left out and greys those thumbnails"
    INFO("a page cut by --max-mib names what it left out and greys those thumbnails");
    const auto& c = pages[5];
    CHECK(c["left_out_banner"].get<std::string>().find("--max-mib") != std::string::npos);
    CHECK(c["thumbs"] == 6);
    CHECK(c["thumbs_missing"].get<int>() == 2 * static_cast<int>(rep.left_out.size()));
  }
}

TEST_CASE("a 12-layer x 12-head x 512-token record: size, and the model view shows in seconds") {
  fs::path dir = test::temp_dir("big");
  render::HtmlOptions opt;
  opt.source = "big.safetensors";
  auto t0 = std::chrono::steady_clock::now();
  render::HtmlReport rep = render::render_html(test::self_record(12, 12, 512), opt, dir / "big.html");
  double write_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  json report = run_browser(dir, {{"model", dir / "big.html"}});
  const auto& m = report["pages"][0];
  check_clean(m);
  MESSAGE("12x12x512x512 page: ", rep.bytes / 1048576.0, " MiB, written in ", write_s, " s; model view shown ",
          m["load_s"], " s after navigation (in-page ", m["page_ms"], " ms)");
  CHECK(rep.left_out.empty());
  CHECK(rep.bytes < 40u * 1024 * 1024);
  CHECK(m["thumbs"] == 144);
  CHECK(m["rows"] == 12);
  CHECK(m["load_s"].get<double>() < 10.0);  // target < 3 s on an idle machine; generous under a parallel suite
  CHECK(m["readout_hover"].get<std::string>().find("query") != std::string::npos);
}
