// CSV/TSV attention import: one [queries, keys] matrix as pandas' DataFrame.to_csv and numpy's
// savetxt write it, with optional key tokens (header row) and query tokens (first column).
#include <attnviz/error.hpp>
#include <attnviz/io/limits.hpp>
#include <attnviz/record/import.hpp>

#include <algorithm>
#include <charconv>
#include <limits>
#include <string_view>

namespace attnviz {

namespace {

size_t after_bom(const std::string& b) { return b.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0; }

// np.savetxt writes header= and footer= lines after its comments prefix, "# " by default. A lone
// "#" cell ("#,0.1,0.2": a row labelled "#") is data.
bool comment_at(const std::string& b, size_t pos) {
  return pos < b.size() && b[pos] == '#' &&
         (pos + 1 == b.size() || b[pos + 1] == ' ' || b[pos + 1] == '\n' || b[pos + 1] == '\r');
}

size_t line_end(const std::string& b, size_t pos) {
  const size_t e = b.find('\n', pos);
  return e == std::string::npos ? b.size() : e;
}

// A number as numpy and pandas write floats: 0.25, 1e-05, -0.0, 3.0000000000000000e-01, nan, NaN,
// inf, -inf, Infinity (case-insensitive), a leading '+'; surrounding spaces are ignored. An empty
// cell is NaN: pandas writes NaN as an empty cell (to_csv's na_rep=""). Parsed as double then
// rounded to float32, as numpy's astype(float32) of pandas' float64 column does.
bool parse_number(std::string_view s, float& out) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r')) s.remove_suffix(1);
  if (s.empty()) {
    out = std::numeric_limits<float>::quiet_NaN();
    return true;
  }
  bool neg = false;
  if (s.front() == '+' || s.front() == '-') {
    neg = s.front() == '-';
    s.remove_prefix(1);
    if (s.empty() || s.front() == '+' || s.front() == '-') return false;
  }
  double d = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (end != s.data() + s.size()) return false;
  if (ec == std::errc::result_out_of_range) {
    // 1e400 -> inf, 1e-400 -> 0 (what numpy's float() gives); from_chars leaves d unset.
    const size_t e = s.find_first_of("eE");
    d = e != std::string_view::npos && e + 1 < s.size() && s[e + 1] == '-' ? 0.0
                                                                             : std::numeric_limits<double>::infinity();
  } else if (ec != std::errc()) {
    return false;
  }
  out = static_cast<float>(neg ? -d : d);
  return true;
}

bool is_number(std::string_view s) {
  float f;
  return parse_number(s, f);
}

// Splits one raw line for sniffing (no quotes): by delim, or by runs of spaces when delim is ' '.
std::vector<std::string_view> split_simple(std::string_view line, char delim) {
  std::vector<std::string_view> out;
  if (delim == ' ') {
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && line[i] == ' ') ++i;
      if (i == line.size()) break;
      size_t j = i;
      while (j < line.size() && line[j] != ' ') ++j;
      out.push_back(line.substr(i, j - i));
      i = j;
    }
    return out;
  }
  size_t i = 0;
  while (true) {
    const size_t j = line.find(delim, i);
    out.push_back(line.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i));
    if (j == std::string_view::npos) break;
    i = j + 1;
  }
  return out;
}

// Commas and tabs outside double quotes in one line.
std::pair<size_t, size_t> count_delims(std::string_view line) {
  size_t commas = 0, tabs = 0;
  bool quoted = false;
  for (char c : line) {
    if (c == '"') quoted = !quoted;
    else if (!quoted && c == ',') ++commas;
    else if (!quoted && c == '\t') ++tabs;
  }
  return {commas, tabs};
}

// The first two lines that are neither blank nor np.savetxt comments (at most 64 KiB looked at).
std::vector<std::string_view> first_lines(const std::string& b) {
  std::vector<std::string_view> out;
  size_t pos = after_bom(b);
  const size_t stop = std::min(b.size(), pos + (size_t{64} << 10));
  while (pos < stop && out.size() < 2) {
    const size_t e = std::min(line_end(b, pos), stop);
    std::string_view line(b.data() + pos, e - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const bool blank = line.find_first_not_of(' ') == std::string_view::npos;
    if (!blank && !comment_at(b, pos)) out.push_back(line);
    pos = e + 1;
  }
  return out;
}

// ',' / '\t' / ' ' (runs of spaces: np.savetxt's default), from the content first (pandas'
// sep="\t" output is often saved as .csv). Tabs win when the first line has only tabs, commas when
// only commas; with both (a TSV token containing a comma, or a CSV one containing a tab), the one
// that splits the first two lines into the same number of cells, then the extension.
char pick_delimiter(const std::vector<std::string_view>& lines, const std::string& ext) {
  if (lines.empty()) return ext == ".tsv" || ext == ".tab" ? '\t' : ',';
  const auto [c0, t0] = count_delims(lines[0]);
  if (t0 && !c0) return '\t';
  if (c0 && !t0) return ',';
  if (c0 && t0) {
    if (lines.size() > 1) {
      const auto [c1, t1] = count_delims(lines[1]);
      if (t1 == t0 && c1 != c0) return '\t';
      if (c1 == c0 && t1 != t0) return ',';
    }
    return ext == ".tsv" || ext == ".tab" ? '\t' : ',';
  }
  if (ext == ".tsv" || ext == ".tab") return '\t';
  if (ext == ".csv") return ',';
  return lines[0].find(' ') != std::string_view::npos ? ' ' : ',';
}

// Reads one record (a line, or several when a quoted field holds line breaks) at a time.
// Quoting as pandas/Python's csv write it: a field that starts with '"' ends at the next lone '"',
// and "" inside it is one '"'. Rows and columns in messages count from 1 as a spreadsheet does.
class Records {
 public:
  Records(const std::string& b, const std::string& path, char delim)
      : b_(b), path_(path), delim_(delim), pos_(after_bom(b)) {}

  int row() const { return row_; }
  std::vector<std::string> comments;

  // False at the end. Blank lines and comment lines are skipped (they still count as rows).
  bool next(std::vector<std::string>& fields) {
    while (pos_ < b_.size()) {
      ++row_;
      if (comment_at(b_, pos_)) {
        const size_t e = line_end(b_, pos_);
        std::string c = b_.substr(pos_ + 1, e - pos_ - 1);
        if (!c.empty() && c.back() == '\r') c.pop_back();
        if (!c.empty() && c.front() == ' ') c.erase(0, 1);
        comments.push_back(std::move(c));
        pos_ = e + 1;
        continue;
      }
      read_record(fields);
      if (fields.size() == 1 && fields[0].find_first_not_of(' ') == std::string::npos && !quoted_single_)
        continue;  // blank line
      return true;
    }
    return false;
  }

 private:
  void read_record(std::vector<std::string>& fields) {
    fields.clear();
    quoted_single_ = false;
    if (delim_ == ' ') skip_spaces();
    while (true) {
      std::string f;
      const bool quoted = delim_ != ' ' && pos_ < b_.size() && b_[pos_] == '"';
      if (quoted) {
        const int start_row = row_;
        ++pos_;
        while (true) {
          if (pos_ >= b_.size())
            throw InputError(path_, "row " + std::to_string(start_row) + ", column " +
                                        std::to_string(fields.size() + 1) +
                                        ": a quoted field is never closed (a '\"' is missing)");
          const char c = b_[pos_++];
          if (c == '"') {
            if (pos_ < b_.size() && b_[pos_] == '"') {
              f += '"';
              ++pos_;
            } else {
              break;
            }
          } else {
            f += c;  // a line break inside quotes stays in the cell: rows count records
          }
        }
        if (fields.empty()) quoted_single_ = true;
      } else {
        const size_t start = pos_;
        while (pos_ < b_.size() && b_[pos_] != delim_ && b_[pos_] != '\n') ++pos_;
        f.assign(b_, start, pos_ - start);
        if (!f.empty() && f.back() == '\r' && (pos_ == b_.size() || b_[pos_] == '\n')) f.pop_back();
      }
      fields.push_back(std::move(f));
      if (pos_ >= b_.size()) return;
      if (b_[pos_] == delim_) {
        ++pos_;
        if (delim_ == ' ') {
          skip_spaces();
          if (pos_ >= b_.size()) return;                   // trailing spaces
          if (b_[pos_] == '\n' || (b_[pos_] == '\r' && pos_ + 1 < b_.size() && b_[pos_ + 1] == '\n')) {
            pos_ = line_end(b_, pos_) + 1;
            return;
          }
        }
        continue;
      }
      if (b_[pos_] == '\r' && pos_ + 1 < b_.size() && b_[pos_ + 1] == '\n') ++pos_;
      if (b_[pos_] == '\n') {
        ++pos_;
        return;
      }
      throw InputError(path_, "row " + std::to_string(row_) + ", column " + std::to_string(fields.size()) +
                                  ": text after the closing quote of a quoted field");
    }
  }
  void skip_spaces() {
    while (pos_ < b_.size() && b_[pos_] == ' ') ++pos_;
  }

  const std::string& b_;
  const std::string& path_;
  char delim_;
  size_t pos_;
  int row_ = 0;
  bool quoted_single_ = false;  // the record is one quoted field: "" is an empty token, not a blank line
};

// pandas' default RangeIndex labels 0, 1, ..., n-1: positions, not tokens.
bool range_labels(const std::vector<std::string>& labels) {
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] != std::to_string(i)) return false;
  return !labels.empty();
}

std::string shown(const std::string& cell) {
  std::string s = cell.size() > 40 ? cell.substr(0, 40) + "..." : cell;
  return "'" + s + "'";
}

}  // namespace

bool looks_like_delimited(const std::string& bytes) {
  const size_t n = std::min(bytes.size(), size_t{4096});
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return false;  // binary
  }
  const auto lines = first_lines(bytes);
  if (lines.empty()) return false;
  const char delim = pick_delimiter(lines, "");
  for (const auto line : lines)
    for (const auto cell : split_simple(line, delim)) {
      std::string_view c = cell;
      if (c.size() >= 2 && c.front() == '"' && c.back() == '"') c = c.substr(1, c.size() - 2);
      if (c.find_first_not_of(' ') != std::string_view::npos && is_number(c)) return true;
    }
  return false;
}

ImportedArrays parse_attention_csv(const std::string& bytes, const std::string& path) {
  if (bytes.size() <= after_bom(bytes)) throw InputError(path, "is empty");
  // The float32 values take up to 2x the file's bytes ("0,": 2 bytes, 4 as float32) and the record
  // another 2x: refuse before reading a file whose copies could exceed the --max-mib limit.
  check_array_bytes(static_cast<std::uint64_t>(bytes.size()) * 4, path,
                    "reading this " + human_bytes(bytes.size()) + " CSV/TSV file");
  const std::string ext = extension_lower(path);
  const char delim = pick_delimiter(first_lines(bytes), ext);
  Records rec(bytes, path, delim);

  // The first record may be a header; every later one is a data row: its first cell may be a
  // query token, the others must be numbers.
  std::vector<std::string> first, fields;
  int first_row = 0, width_row = 0;
  size_t width = 0;                       // cells per data row (from the second record)
  std::vector<float> rest;                // cells 2..width of the rows after the first
  std::vector<float> col0_value;          // cell 1 of those rows as a number (NaN when it is text)
  std::string col0_text;                  // ... and as text, one after the other
  std::vector<size_t> col0_end;
  bool col0_has_text = false;             // some row starts with a non-number: a query-token column
  bool non_integer = false;               // some cell is not an integer literal (0.5, 1e-05, nan, empty)
  int rows = 0;
  while (rec.next(fields)) {
    if (++rows == 1) {
      first = fields;
      first_row = rec.row();
      continue;
    }
    if (rows == 2) {
      width = fields.size();
      width_row = rec.row();
    } else if (fields.size() != width) {
      throw InputError(path, "ragged rows: row " + std::to_string(rec.row()) + " has " +
                                 std::to_string(fields.size()) + " cells but row " + std::to_string(width_row) +
                                 " has " + std::to_string(width) + " (every row needs the same number)");
    }
    float v;
    if (parse_number(fields[0], v)) {
      col0_value.push_back(v);
    } else {
      col0_value.push_back(std::numeric_limits<float>::quiet_NaN());
      col0_has_text = true;
    }
    col0_text += fields[0];
    col0_end.push_back(col0_text.size());
    if (!non_integer)
      for (const auto& f : fields)
        if (f.empty() || f.find_first_not_of("0123456789+- ") != std::string::npos) non_integer = true;
    for (size_t j = 1; j < fields.size(); ++j) {
      if (!parse_number(fields[j], v))
        throw InputError(path, "row " + std::to_string(rec.row()) + ", column " + std::to_string(j + 1) + ": " +
                                   shown(fields[j]) + " is not a number");
      rest.push_back(v);
    }
  }
  if (rows == 0) throw InputError(path, "holds no rows of numbers (only blank or '#' comment lines)");

  // Is the first record a header of key tokens? Yes when a cell after the first is not a number;
  // when it is one column that is not a number; when its first cell is empty (pandas writes ""
  // above the index column) and the rows have a token column or the header is 0..n-1 (pandas'
  // default column labels); or when it is exactly 0..n-1 (to_csv(index=False) without column names)
  // above rows of floats (pandas writes floats as 0.0, 1e-05, never as 0 or 1).
  bool text_after_first = false;
  for (size_t j = 1; j < first.size(); ++j) {
    if (first[j].find_first_not_of(' ') != std::string::npos && !is_number(first[j])) text_after_first = true;
  }
  const bool first_empty = first[0].empty();
  const std::vector<std::string> after_first(first.begin() + 1, first.end());
  const bool header = text_after_first || (first.size() == 1 && !is_number(first[0])) ||
                      (first_empty && first.size() > 1 && (col0_has_text || range_labels(after_first))) ||
                      (rows > 1 && non_integer && range_labels(first));
  if (rows == 1) {
    if (header) throw InputError(path, "has a header row (row " + std::to_string(first_row) + ") but no rows of numbers");
    width = first.size();
    width_row = first_row;
  }
  // A first column of query tokens: some cell of it is text, or the header has "" above it. (With
  // a text column, the header may also name only the value columns, one cell fewer than the rows.)
  bool has_index = col0_has_text;
  if (!header && !is_number(first[0])) has_index = true;
  if (header && rows > 1 && width > 1 && first_empty && first.size() == width) has_index = true;
  if (header && rows > 1 && first.size() != width && !(has_index && first.size() + 1 == width))
    throw InputError(path, "the header (row " + std::to_string(first_row) + ") has " + std::to_string(first.size()) +
                               " cells but the data rows have " + std::to_string(width) + " (row " +
                               std::to_string(width_row) + ")");
  if (!header && first.size() != width)
    throw InputError(path, "ragged rows: row " + std::to_string(first_row) + " has " + std::to_string(first.size()) +
                               " cells but row " + std::to_string(width_row) + " has " + std::to_string(width) +
                               " (every row needs the same number)");
  const size_t keys = width - (has_index ? 1 : 0);
  if (keys == 0)
    throw InputError(path, "has only a column of row labels, no numbers (row " + std::to_string(width_row) + ")");

  // Assemble [queries, keys] in C order: the first record (when it is data), then the others.
  ImportedArrays in;
  in.format = delim == ',' ? "csv" : delim == '\t' ? "tsv" : "text (space-separated)";
  ImportedArray a;
  const size_t queries = static_cast<size_t>(rows) - (header ? 1 : 0);
  a.shape = {static_cast<std::int64_t>(queries), static_cast<std::int64_t>(keys)};
  a.values.reserve(queries * keys);
  std::vector<std::string> query_tokens;
  if (!header) {
    for (size_t j = 0; j < first.size(); ++j) {
      float v;
      if (j == 0 && has_index) {
        query_tokens.push_back(first[0]);
        continue;
      }
      if (!parse_number(first[j], v))
        throw InputError(path, "row " + std::to_string(first_row) + ", column " + std::to_string(j + 1) + ": " +
                                   shown(first[j]) + " is not a number");
      a.values.push_back(v);
    }
  }
  const size_t per_row = width - 1;
  for (size_t i = 0; i < col0_value.size(); ++i) {
    if (has_index) query_tokens.push_back(col0_text.substr(i ? col0_end[i - 1] : 0, col0_end[i] - (i ? col0_end[i - 1] : 0)));
    else a.values.push_back(col0_value[i]);
    a.values.insert(a.values.end(), rest.begin() + static_cast<std::ptrdiff_t>(i * per_row),
                    rest.begin() + static_cast<std::ptrdiff_t>((i + 1) * per_row));
  }
  std::vector<std::string> key_tokens;
  if (header) key_tokens.assign(first.begin() + (first.size() == width && has_index ? 1 : 0), first.end());
  if (range_labels(key_tokens)) key_tokens.clear();
  if (range_labels(query_tokens)) query_tokens.clear();
  // Square with the same (or only one set of) labels: self-attention over "tokens". Different
  // labels, or not square: cross-attention, queries "target", keys "source".
  if (queries == keys && (key_tokens.empty() || query_tokens.empty() || key_tokens == query_tokens)) {
    if (!key_tokens.empty()) in.tokens["tokens"] = key_tokens;
    else if (!query_tokens.empty()) in.tokens["tokens"] = query_tokens;
  } else {
    a.cross = true;
    if (!query_tokens.empty()) in.tokens["target"] = std::move(query_tokens);
    if (!key_tokens.empty()) in.tokens["source"] = std::move(key_tokens);
  }
  in.arrays.push_back(std::move(a));
  if (!rec.comments.empty()) {
    std::string c;
    for (const auto& l : rec.comments) c += (c.empty() ? "" : "\n") + l;
    in.metadata["comments"] = c;
  }
  return in;
}

}  // namespace attnviz
