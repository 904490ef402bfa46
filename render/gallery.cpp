// The gallery page: sections in the order items arrive, a figure per item with its caption and links.
#include <attnviz/render/escape.hpp>
#include <attnviz/render/gallery.hpp>

namespace attnviz::render {

std::string gallery_html(const GalleryPage& page) {
  std::string h =
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + html_escape(page.title) +
      "</title>\n"
      "<style>body{font-family:sans-serif;margin:2em;max-width:1400px;color:#222}"
      "figure{display:inline-block;vertical-align:top;margin:0 1.5em 2em 0;max-width:640px}"
      "figure img{max-width:640px;border:1px solid #ddd}figcaption{font-size:0.9em;line-height:1.35}"
      "h2{border-bottom:1px solid #ccc;padding-bottom:0.2em}.notes{font-family:monospace;white-space:pre}"
      "</style></head><body>\n<h1>" + html_escape(page.title) + "</h1>\n";
  std::string section;
  for (const auto& it : page.items) {
    if (it.section != section) {
      section = it.section;
      h += "<h2>" + html_escape(section) + "</h2>\n";
    }
    h += "<figure><a href=\"" + html_escape(it.image) + "\"><img src=\"" + html_escape(it.image) + "\" alt=\"" +
         html_escape(it.title) + "\"></a><figcaption><b>" + html_escape(it.title) + "</b> " + html_escape(it.caption);
    for (const auto& l : it.links) {
      auto dot = l.rfind('.');
      std::string kind = dot == std::string::npos ? "file" : l.substr(dot + 1);
      h += " <a href=\"" + html_escape(l) + "\">[" + html_escape(kind) + "]</a>";
    }
    h += "</figcaption></figure>\n";
  }
  if (!page.notes.empty()) {
    h += "<h2>Run summary</h2>\n<div class=\"notes\">";
    for (const auto& n : page.notes) h += html_escape(n) + "\n";
    h += "</div>\n";
  }
  h += "</body></html>\n";
  return h;
}

}  // namespace attnviz::render
