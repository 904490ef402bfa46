// Escaping plain text for HTML pages and for Pango markup (both read XML character entities).
#pragma once
#include <string>

namespace attnviz::render {

// Replaces & < > " ' by &amp; &lt; &gt; &quot; &#39;, so that text is safe in HTML element
// content, in a quoted HTML attribute, and in Pango markup.
std::string html_escape(const std::string& text);

}  // namespace attnviz::render
