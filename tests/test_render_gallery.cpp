// The gallery page: sections, figures, links labelled by extension, escaping, the run summary.
#include <attnviz/render/gallery.hpp>

#include <doctest/doctest.h>

using namespace attnviz::render;

namespace {
size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}
}  // namespace

TEST_CASE("gallery page: a heading where the section changes, a figure per item, escaped text") {
  GalleryPage page;
  page.items = {{"MNIST", "Strip", "CLS <attention> & rollout", "mnist/strip.png", {"mnist/strip.svg", "mnist/strip.pdf"}},
                {"MNIST", "Grid", "24 digits", "mnist/grid.png", {}},
                {"Translation", "Heatmap \"a\"", "one pair", "tr/h.png", {"tr/h.html", "README"}}};
  page.notes = {"mnist: 97.5% <ok>"};
  const std::string h = gallery_html(page);
  CHECK(h.rfind("<!doctype html>", 0) == 0);
  CHECK(count(h, "<h2>") == 3);   // MNIST, Translation, Run summary
  CHECK(h.find("<h2>MNIST</h2>") < h.find("<h2>Translation</h2>"));
  CHECK(count(h, "<figure>") == 3);
  CHECK(h.find("CLS &lt;attention&gt; &amp; rollout") != std::string::npos);
  CHECK(h.find("Heatmap &quot;a&quot;") != std::string::npos);
  CHECK(h.find("<attention>") == std::string::npos);
  CHECK(h.find("<a href=\"mnist/strip.svg\">[svg]</a> <a href=\"mnist/strip.pdf\">[pdf]</a>") != std::string::npos);
  CHECK(h.find("<a href=\"README\">[file]</a>") != std::string::npos);
  CHECK(h.find("<img src=\"tr/h.png\" alt=\"Heatmap &quot;a&quot;\">") != std::string::npos);
  CHECK(h.find("mnist: 97.5% &lt;ok&gt;") != std::string::npos);
  CHECK(h.find("<script") == std::string::npos);
  page.notes.clear();
  page.title = "mine";
  const std::string bare = gallery_html(page);
  CHECK(bare.find("Run summary") == std::string::npos);
  CHECK(bare.find("<title>mine</title>") != std::string::npos);
}
