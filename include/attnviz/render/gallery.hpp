// The gallery page: one static, self-contained index.html of figures grouped in sections (the demo's).
#pragma once
#include <string>
#include <vector>

namespace attnviz::render {

struct GalleryItem {
  std::string section;             // "Samples", "MNIST", "Translation", ...: a heading where it changes
  std::string title;
  std::string caption;             // one or two sentences: what the picture shows and how to read it
  std::string image;               // path relative to the page, shown in it (PNG)
  std::vector<std::string> links;  // other formats of the same figure (SVG, PDF, HTML), relative paths
};

struct GalleryPage {
  std::string title = "attnviz gallery";
  std::vector<GalleryItem> items;  // in page order
  std::vector<std::string> notes;  // lines of a "Run summary" at the end (none: no summary)
};

// The page as HTML: every text escaped, each link labelled by its extension ("[svg]"); opens from
// disk in any browser (no server, no scripts).
std::string gallery_html(const GalleryPage& page);

}  // namespace attnviz::render
