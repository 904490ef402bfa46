// Pharaoh alignment files ("0-0 1-1 2?2"; i = source, j = target, 0-based): read, write, look up.
#include <attnviz/io/atomic_file.hpp>
#include <attnviz/error.hpp>
#include <attnviz/io/pharaoh.hpp>

#include <algorithm>
#include <charconv>

namespace attnviz {

bool Alignment::contains(int source, int target, bool sure_only) const {
  return std::any_of(links.begin(), links.end(), [&](const AlignmentLink& l) {
    return l.source == source && l.target == target && (l.sure || !sure_only);
  });
}

int Alignment::max_source() const {
  int m = -1;
  for (const auto& l : links) m = std::max(m, l.source);
  return m;
}

int Alignment::max_target() const {
  int m = -1;
  for (const auto& l : links) m = std::max(m, l.target);
  return m;
}

namespace {
bool parse_index(std::string_view s, int& out) {
  if (s.empty() || s.size() > 9) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && out >= 0;
}
}  // namespace

namespace {
bool is_link(std::string_view tok) {
  size_t sep = tok.find_first_of("-?p");
  int a, b;
  return sep != std::string_view::npos && parse_index(tok.substr(0, sep), a) && parse_index(tok.substr(sep + 1), b);
}
}  // namespace

Alignment parse_pharaoh_line(std::string_view line, const std::string& path, int line_no) {
  Alignment a;
  // SimAlign's gold and output put a sentence id first: "id<TAB>links". A single field before the
  // first tab that is not itself a link is that id, and is skipped.
  if (size_t tab = line.find('\t'); tab != std::string_view::npos) {
    std::string_view first = line.substr(0, tab);
    while (!first.empty() && first.front() == ' ') first.remove_prefix(1);
    while (!first.empty() && first.back() == ' ') first.remove_suffix(1);
    if (!first.empty() && first.find(' ') == std::string_view::npos && !is_link(first)) line = line.substr(tab + 1);
  }
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    if (i >= line.size()) break;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
    std::string_view tok = line.substr(i, j - i);
    size_t sep = tok.find_first_of("-?p");
    AlignmentLink link;
    bool ok = sep != std::string_view::npos && parse_index(tok.substr(0, sep), link.source) &&
              parse_index(tok.substr(sep + 1), link.target);
    if (!ok)
      throw InputError(path, "line " + std::to_string(line_no) + ": '" + std::string(tok) +
                                 "' is not an alignment link (expected i-j, i?j or ipj with 0-based indices)");
    link.sure = tok[sep] == '-';
    a.links.push_back(link);
    i = j;
  }
  return a;
}

std::vector<Alignment> read_pharaoh(const std::filesystem::path& path) {
  std::string text = read_file(path);
  std::vector<Alignment> out;
  size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    ++line_no;
    out.push_back(parse_pharaoh_line(std::string_view(text).substr(pos, end - pos), path.string(), line_no));
    pos = end + 1;
  }
  return out;
}

std::string to_pharaoh(const Alignment& alignment) {
  std::string s;
  for (const auto& l : alignment.links) {
    if (!s.empty()) s += ' ';
    s += std::to_string(l.source) + (l.sure ? "-" : "?") + std::to_string(l.target);
  }
  return s;
}

void write_pharaoh(const std::filesystem::path& path, const std::vector<Alignment>& alignments) {
  std::string text;
  for (const auto& a : alignments) text += to_pharaoh(a) + "\n";
  write_file_atomically(path, text);
}

}  // namespace attnviz
