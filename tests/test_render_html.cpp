// The interactive HTML page without a browser: quantization bounds, the page's structure (inline
// only, no external reference), the packed weights decoded back, --max-mib, bad options, the CLI.
#include <attnviz/error.hpp>
#include <attnviz/record/record.hpp>
#include <attnviz/render/html.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include <cmath>
#include <regex>

#include "browser/html_records.hpp"
#include "test_util.hpp"

using namespace attnviz;
using namespace attnviz::render;
using attnviz::test::run_cli;
using attnviz::test::slurp;
using attnviz::test::temp_dir;

namespace {

std::string unbase64(const std::string& s) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  unsigned acc = 0;
  int bits = 0;
  for (char c : s) {
    int v = val(c);
    if (v < 0) continue;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

std::string inflate(const std::string& z, size_t size) {
  std::string out(size, '\0');
  uLongf n = size;
  REQUIRE(uncompress(reinterpret_cast<Bytef*>(out.data()), &n, reinterpret_cast<const Bytef*>(z.data()), z.size()) == Z_OK);
  REQUIRE(n == size);
  return out;
}

// The text of <script ... id="ID">...</script>.
std::string script(const std::string& page, const std::string& id) {
  auto a = page.find("id=\"" + id + "\">");
  REQUIRE(a != std::string::npos);
  a = page.find('>', a) + 1;
  auto b = page.find("</script>", a);
  REQUIRE(b != std::string::npos);
  return page.substr(a, b - a);
}

}  // namespace

TEST_CASE("quantization: square-root codes, error bounds, non-finite code") {
  HeadRange r = head_range(std::vector<float>{0.f, 0.25f, 0.5f}.data(), 3);
  CHECK(r.lo == 0.f);
  CHECK(r.hi == 0.5f);
  for (int bits : {8, 16}) {
    const double levels = (1 << bits) - 2;
    CHECK(quantize(0.f, r, bits) == 0);
    CHECK(quantize(0.5f, r, bits) == static_cast<unsigned>(levels));
    CHECK(quantize(NAN, r, bits) == (1u << bits) - 1);
    CHECK(quantize(INFINITY, r, bits) == (1u << bits) - 1);
    CHECK(std::isnan(dequantize((1u << bits) - 1, r, bits)));
    for (float v = 0; v <= 0.5f; v += 0.0007f) {
      float back = dequantize(quantize(v, r, bits), r, bits);
      // sqrt companding: |error| <= span * (2 sqrt(t) / levels + 1 / levels^2) / 2 at t = v / span.
      double bound = 0.5 * (2 * std::sqrt(v / 0.5) / levels + 1 / (levels * levels)) * 0.5 + 1e-7;
      CHECK(std::abs(back - v) <= bound);
    }
  }
  // 1/512 of a head whose peak is 0.5 survives 8 bits (linear codes would round it to 0).
  CHECK(quantize(1.f / 512, r, 8) == 16);
  // Negative values widen the range below zero; constant heads decode exactly.
  HeadRange neg = head_range(std::vector<float>{-1.f, 2.f}.data(), 2);
  CHECK(neg.lo == -1.f);
  CHECK(dequantize(quantize(-1.f, neg, 8), neg, 8) == -1.f);
  HeadRange flat = head_range(std::vector<float>{0.f, 0.f}.data(), 2);
  CHECK(dequantize(quantize(0.f, flat, 8), flat, 8) == 0.f);
}

TEST_CASE("page: inline only, metadata as JSON, every weight decodes within the bound") {
  AttentionRecord rec = test::self_record(2, 3, 10);
  rec.tokens["tokens"][3] = "</script><img src=x>";  // must stay data, not markup
  rec.tensors[1].at(2, 4, 5) = NAN;
  for (int bits : {8, 16}) {
    CAPTURE(bits);
    HtmlOptions opt;
    opt.bits = bits;
    opt.source = "s.safetensors";
    HtmlReport rep;
    std::string page = html_page(rec, opt, &rep);
    CHECK(rep.bytes == page.size());
    CHECK(rep.values == 2u * 3 * 10 * 10);
    CHECK(rep.left_out.empty());
    CHECK(page.find("Content-Security-Policy") != std::string::npos);
    CHECK(page.find("default-src 'none'") != std::string::npos);
    // Nothing that could load anything: no src/href attributes in markup, no link/iframe tags, no URLs
    // other than the SVG namespace name.
    std::string no_ns = std::regex_replace(page, std::regex("http://www\\.w3\\.org/2000/svg"), "");
    CHECK(no_ns.find("http://") == std::string::npos);
    CHECK(no_ns.find("https://") == std::string::npos);
    CHECK(page.find("<link") == std::string::npos);
    CHECK(page.find("<iframe") == std::string::npos);
    CHECK(page.find("<img") == std::string::npos);  // the token's "<img" is escaped as \u003c
    CHECK(std::regex_search(page, std::regex("<script[^>]* src=")) == false);

    auto meta = nlohmann::json::parse(script(page, "attnviz-meta"));
    CHECK(meta["bits"] == bits);
    CHECK(meta["tokens"]["tokens"][3] == "</script><img src=x>");
    REQUIRE(meta["tensors"].size() == 2);
    CHECK(meta["tensors"][1]["nonfinite"] == 1);
    CHECK(meta["tensors"][0]["thumb"]["rows"] == 10);
    CHECK(meta["cmap"]["table"].size() == 256);
    for (int ti = 0; ti < 2; ++ti) {
      const auto& t = rec.tensors[ti];
      const auto& jt = meta["tensors"][ti];
      std::string bytes = inflate(unbase64(script(page, "attnviz-chunk-" + jt["chunk"].get<std::string>())),
                                  t.data.size() * bits / 8);
      for (int h = 0; h < t.heads; ++h) {
        HeadRange r{jt["ranges"][h][0].get<float>(), jt["ranges"][h][1].get<float>()};
        for (int q = 0; q < t.queries; ++q)
          for (int k = 0; k < t.keys; ++k) {
            size_t i = (static_cast<size_t>(h) * t.queries + q) * t.keys + k;
            unsigned code = static_cast<unsigned char>(bytes[i * bits / 8]);
            if (bits == 16) code |= static_cast<unsigned>(static_cast<unsigned char>(bytes[i * 2 + 1])) << 8;
            float v = dequantize(code, r, bits), want = t.at(h, q, k);
            if (std::isnan(want)) {
              CHECK(std::isnan(v));
            } else {
              CHECK(std::abs(v - want) <= (r.hi - r.lo) / ((1 << bits) - 2) + 1e-6);
            }
          }
      }
    }
  }
}

TEST_CASE("--max-mib leaves out whole matrices, says which, and stays under the limit") {
  AttentionRecord rec = test::self_record(4, 2, 200);
  HtmlOptions opt;
  HtmlReport all;
  html_page(rec, opt, &all);
  REQUIRE(all.left_out.empty());
  opt.max_mib = (all.bytes - all.data_bytes / 2.0) / (1024.0 * 1024.0);  // room for about half the weights
  HtmlReport some;
  std::string page = html_page(rec, opt, &some);
  CHECK(page.size() <= opt.max_mib * 1024 * 1024);
  CHECK(!some.left_out.empty());
  CHECK(some.left_out.size() < 4);
  CHECK(some.left_out[0].find("encoder.layer") != std::string::npos);
  auto meta = nlohmann::json::parse(script(page, "attnviz-meta"));
  CHECK(meta["left_out"].size() == some.left_out.size());
  int missing = 0;
  for (auto& t : meta["tensors"]) missing += t["chunk"].is_null();
  CHECK(missing == static_cast<int>(some.left_out.size()));
  opt.max_mib = 0.001;
  CHECK_THROWS_AS(html_page(rec, opt), UsageError);
}

TEST_CASE("bad options and records") {
  AttentionRecord rec = test::self_record(1, 1, 4);
  HtmlOptions opt;
  opt.bits = 12;
  CHECK_THROWS_AS(html_page(rec, opt), UsageError);
  opt.bits = 8;
  opt.cmap = "rainbow";
  CHECK_THROWS_AS(html_page(rec, opt), UsageError);
  opt.cmap = "viridis";
  AttentionRecord empty;
  CHECK_THROWS_AS(html_page(empty, opt), InputError);
  AttentionRecord img = test::image_record();
  opt.image_maps.push_back({"rollout", 3, 3, std::vector<float>(9, 0.f)});  // not the 7x7 grid
  CHECK_THROWS_AS(html_page(img, opt), UsageError);
}

TEST_CASE("CLI: render html writes one page, refuses other extensions and bad input with no output") {
  auto dir = temp_dir("cli");
  auto out = dir / "view.html";
  auto r = run_cli("render html '" + attnviz::test::sample("alignment_6x7.safetensors").string() + "' -o '" + out.string() + "'");
  CHECK_MESSAGE(r.code == 0, r.out);
  CHECK(r.out.find("MiB") != std::string::npos);
  std::string page = slurp(out);
  CHECK(page.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(page.find("decoder.layer0.cross") != std::string::npos);

  r = run_cli("render html '" + attnviz::test::sample("alignment_6x7.safetensors").string() + "' -o '" + (dir / "v.png").string() + "'");
  CHECK(r.code == 1);
  CHECK(r.out.find(".html") != std::string::npos);
  attnviz::test::spit(dir / "bad.safetensors", "not a record");
  r = run_cli("render html '" + (dir / "bad.safetensors").string() + "' -o '" + (dir / "bad.html").string() + "'");
  CHECK(r.code == 2);
  CHECK(r.out.find("bad.safetensors") != std::string::npos);
  CHECK(!std::filesystem::exists(dir / "bad.html"));
  r = run_cli("render html '" + attnviz::test::sample("alignment_6x7.safetensors").string() + "' --bits 12 -o '" + (dir / "b.html").string() + "'");
  CHECK(r.code == 1);
  CHECK(attnviz::test::count_files(dir) == 2);  // view.html, bad.safetensors
}
