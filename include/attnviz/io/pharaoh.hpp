// Pharaoh word alignments ("0-0 1-2 2?3"): reading, writing, and lookup of sure/possible links.
#pragma once
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace attnviz {

// One link between source token `source` and target token `target` (both 0-based).
// Pharaoh text: "i-j" is a sure link, "i?j" or "ipj" a possible link (i = source, j = target).
struct AlignmentLink {
  int source = 0;
  int target = 0;
  bool sure = true;  // false: possible
  bool operator==(const AlignmentLink&) const = default;
};

// The alignment of one sentence pair.
struct Alignment {
  std::vector<AlignmentLink> links;

  // True if (source, target) is linked (sure or possible); `sure_only` ignores possible links.
  bool contains(int source, int target, bool sure_only = false) const;
  int max_source() const;  // largest source index, -1 when empty
  int max_target() const;  // largest target index, -1 when empty
};

// Parses one line. Tokens are separated by blanks; an empty line is an empty alignment. A line
// "id<TAB>links" (SimAlign) has its id skipped: a single field before the first tab that is not a link.
// Throws InputError(path, "line N: ...") naming the bad token.
Alignment parse_pharaoh_line(std::string_view line, const std::string& path = "", int line_no = 1);

// One alignment per line of the file (one per sentence pair). Throws InputError on bad input.
std::vector<Alignment> read_pharaoh(const std::filesystem::path& path);

// "0-0 1-1 2?2": sure links as i-j, possible links as i?j, in the stored order.
std::string to_pharaoh(const Alignment& alignment);

// Writes one line per alignment, atomically.
void write_pharaoh(const std::filesystem::path& path, const std::vector<Alignment>& alignments);

}  // namespace attnviz
