// The highlighted-text view: token boxes shaded by attention weight, wrapped; PNG/SVG/PDF/HTML.
#include <attnviz/io/atomic_file.hpp>
#include <attnviz/error.hpp>
#include <attnviz/render/escape.hpp>
#include <attnviz/render/plots.hpp>
#include <attnviz/render/text_view.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

namespace attnviz::render {

namespace {

constexpr double kMargin = 16;
constexpr double kPadX = 2.5, kPadY = 2;  // inside a token box
constexpr double kGap = 3.5;               // between tokens separated by a space
constexpr double kLineGap = 3;             // between wrapped lines
const Color kOk = Color::rgb8(0x1a, 0x7f, 0x37);
const Color kWrong = Color::rgb8(0xc6, 0x28, 0x28);
const Color kGrey = Color::rgb8(0x70, 0x70, 0x70);
const Color kUnseen = Color::rgb8(0xa8, 0xa8, 0xa8);   // tokens after a causal row's next token
constexpr double kMarkRoom = 8;                           // above each line of a causal row: the arrow
constexpr double kQueryStroke = 1.75, kNextStroke = 1.25;

bool in(const std::string& s, std::initializer_list<const char*> set) {
  for (const char* c : set)
    if (s == c) return true;
  return false;
}
bool wordish(const std::string& s) {
  return !s.empty() && (std::isalnum(static_cast<unsigned char>(s[0])) || static_cast<unsigned char>(s[0]) >= 0x80);
}

// Whether a space goes between tokens prev and cur, as typed text would have it:
// "milk ' s" -> "milk's", "( x )" -> "(x)", "end ." -> "end.".
bool space_between(const std::string& prev, const std::string& cur, const std::string* next) {
  if (in(cur, {",", ".", ";", ":", "!", "?", ")", "]", "}", "%"})) return false;
  if (in(prev, {"(", "[", "{", "$"})) return false;
  if (cur == "'" && wordish(prev) && next && wordish(*next)) return false;  // don't, milk's
  if (prev == "'" && wordish(cur)) return false;
  return true;
}

// A causal row's marks: the query token in the text, and the predicted token when the text has it
// right after the query (-1 otherwise: the last position, a translator's final <eos>).
bool has_query(const TextViewItem& it) { return it.query >= 0 && it.query < static_cast<int>(it.tokens.size()); }
int next_token_index(const TextViewItem& it) {
  const int k = it.query + 1;
  return has_query(it) && !it.next_token.empty() && k < static_cast<int>(it.tokens.size()) && it.tokens[k] == it.next_token
             ? k
             : -1;
}

std::string header_text(const TextViewItem& it) {
  std::string h;
  if (!it.label.empty()) h += "label: " + it.label;
  if (!it.prediction.empty()) {
    if (!h.empty()) h += "   ";
    h += "predicted: " + it.prediction;
    if (it.probability >= 0) h += fmt::format(" ({:.2f})", it.probability);
  }
  return h;
}

Color header_color(const TextViewItem& it) {
  if (it.label.empty() || it.prediction.empty()) return kBlack;
  return it.label == it.prediction ? kOk : kWrong;
}

std::string norm_caption(TextNorm n, const std::string& quantity) {
  const std::string q = quantity.empty() ? "attention weight" : quantity;
  switch (n) {
    case TextNorm::Sentence: return q + " / largest in its sentence";
    case TextNorm::Global: return q + " / largest in the figure";
    case TextNorm::None: return q;
  }
  return "";
}

std::string css_color(Color c) {
  auto b = [](double v) { return static_cast<int>(std::lround(std::clamp(v, 0.0, 1.0) * 255)); };
  return fmt::format("#{:02x}{:02x}{:02x}", b(c.r), b(c.g), b(c.b));
}

}  // namespace

TextNorm parse_text_norm(const std::string& s) {
  if (s == "sentence") return TextNorm::Sentence;
  if (s == "global") return TextNorm::Global;
  if (s == "none") return TextNorm::None;
  throw UsageError("unknown normalization '" + s + "' (expected sentence, global or none)");
}

TextViewItem text_item(const AttentionRecord& record, const TextSelection& sel) {
  const AttentionTensor* t = record.find(sel.tensor);
  if (!t) {
    std::string names;
    for (const auto& x : record.tensors) names += (names.empty() ? "" : ", ") + x.name;
    throw UsageError("no tensor '" + sel.tensor + "' in the record (it has: " + names + ")");
  }
  if (sel.head < -1 || sel.head >= t->heads) throw UsageError(fmt::format("head {} out of range (tensor '{}' has {})", sel.head, t->name, t->heads));
  if (sel.query < 0 || sel.query >= t->queries)
    throw UsageError(fmt::format("query {} out of range (tensor '{}' has {})", sel.query, t->name, t->queries));
  const auto* toks = record.axis_tokens(t->key_axis);
  if (!toks) throw UsageError("tensor '" + t->name + "' has no key tokens to show as text");
  TextViewItem it;
  it.tokens = *toks;
  it.weights.resize(t->keys);
  for (int k = 0; k < t->keys; ++k) {
    if (sel.head >= 0) {
      it.weights[k] = t->at(sel.head, sel.query, k);
    } else {
      double s = 0;
      for (int h = 0; h < t->heads; ++h) s += t->at(h, sel.query, k);
      it.weights[k] = static_cast<float>(s / t->heads);
    }
  }
  auto meta = [&](const char* key) {
    auto i = record.metadata.find(key);
    return i == record.metadata.end() ? std::string() : i->second;
  };
  it.label = meta("label");
  it.prediction = meta("prediction");
  try {
    if (!meta("probability").empty()) it.probability = std::stod(meta("probability"));
  } catch (const std::exception&) {
    it.probability = -1;
  }
  std::string note = meta("source");
  if (!meta("model").empty()) note += (note.empty() ? "" : " · ") + meta("model");
  it.note = note;
  // A decoder's row: which token is the query and which one it predicts. The translator's
  // decoder.relevance_self names its rows by the explained token (queries "target", keys
  // "target_input"); its row i is still query position i of target_input.
  const bool one_axis = t->query_axis == t->key_axis || (t->query_axis == "target" && t->key_axis == "target_input");
  if (one_axis && static_cast<int>(toks->size()) == t->keys && causal_tensor(record, *t)) {
    it.query = sel.query;
    const auto* out = t->key_axis == "target_input" ? record.axis_tokens("target") : nullptr;
    if (out && out->size() == toks->size()) it.next_token = (*out)[sel.query];   // y_{i+1}, <eos> last
    else if (sel.query + 1 < t->keys) it.next_token = (*toks)[sel.query + 1];
  }
  return it;
}

std::string query_caption(const TextViewItem& it) {
  if (!has_query(it)) return "";
  std::string s = fmt::format("query “{}” (position {}) → ", it.tokens[it.query], it.query);
  return s + (it.next_token.empty() ? "its next token is not in the record" : "next token “" + it.next_token + "”");
}

Color token_shade(double t, const TextViewOptions& opt) {
  if (!std::isfinite(t)) return kNonFinite;
  t = std::clamp(t, 0.0, 1.0);
  Color c = Colormap::get(opt.cmap).at(opt.reverse ? 1.0 - t : t);
  if (!opt.fade) return c;
  return {1.0 + (c.r - 1.0) * t, 1.0 + (c.g - 1.0) * t, 1.0 + (c.b - 1.0) * t, 1.0};
}

std::vector<std::vector<double>> normalized_weights(const std::vector<TextViewItem>& items, const TextViewOptions& opt) {
  auto finite_max = [](const std::vector<float>& w) {
    double m = 0;
    for (float v : w)
      if (std::isfinite(v)) m = std::max(m, static_cast<double>(v));
    return m;
  };
  double global = 0;
  for (const auto& it : items) global = std::max(global, finite_max(it.weights));
  std::vector<std::vector<double>> out;
  for (const auto& it : items) {
    double div = opt.norm == TextNorm::Sentence ? finite_max(it.weights) : opt.norm == TextNorm::Global ? global : 1.0;
    std::vector<double> t;
    for (float v : it.weights) t.push_back(!std::isfinite(v) ? std::numeric_limits<double>::quiet_NaN()
                                           : div > 0 ? std::clamp(v / div, 0.0, 1.0) : 0.0);
    out.push_back(std::move(t));
  }
  return out;
}

DrawList layout_text(const std::vector<TextViewItem>& items, const TextViewOptions& opt, std::vector<TokenBox>* boxes) {
  for (const auto& it : items)
    if (it.tokens.size() != it.weights.size())
      throw UsageError(fmt::format("text view: {} tokens but {} weights", it.tokens.size(), it.weights.size()));
  const double width = std::max(120.0, opt.width);
  DrawList list;
  list.width = width + 2 * kMargin;
  const auto shades = normalized_weights(items, opt);
  TextStyle tok_style;
  tok_style.size = opt.font_size;
  TextStyle head_style;
  head_style.size = opt.font_size * 0.85;
  head_style.bold = true;
  TextStyle note_style;
  note_style.size = opt.font_size * 0.75;
  double y = kMargin;
  if (!opt.title.empty()) y += add_title(list, opt.title, list.width, y) + 6;
  const double line_h = measure_text("Ag", tok_style).height + 2 * kPadY;
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& it = items[i];
    // Header: label / prediction (green when right, red when wrong), then a grey note.
    std::string head = header_text(it);
    double hx = kMargin;
    const double head_h = measure_text("Ag", head_style).height;
    if (!head.empty()) {
      list.add(Text{{hx, y}, head, head_style, header_color(it), HAlign::Left, VAlign::Top});
      hx += measure_text(head, head_style).width + 10;
    }
    if (!it.note.empty()) {
      TextStyle ns = note_style;
      ns.max_width = std::max(20.0, kMargin + width - hx);
      list.add(Text{{hx, y + (head_h - measure_text("Ag", ns).height)}, it.note, ns, kGrey, HAlign::Left, VAlign::Top});
    }
    if (!head.empty() || !it.note.empty()) y += head_h + 3;
    // A causal row: one more header line naming the query and the token it predicts, and room
    // above every token line for the arrow between them.
    const bool marks = has_query(it);
    if (marks) {
      TextStyle qs = head_style;
      qs.wrap_width = width;
      const std::string caption = query_caption(it);
      list.add(Text{{kMargin, y}, caption, qs, kQueryMark, HAlign::Left, VAlign::Top});
      y += measure_text(caption, qs).height + 3 + kMarkRoom;
    }
    const int next_k = next_token_index(it);
    double qx = 0, qy = 0, qw = 0;   // the query box, for the arrow
    // Tokens, wrapped at the column width.
    double x = kMargin;
    for (size_t k = 0; k < it.tokens.size(); ++k) {
      const std::string& tok = it.tokens[k];
      TextStyle ts = tok_style;
      ts.max_width = width - 2 * kPadX;   // a single enormous token is shortened, never overflows
      const double w = std::min(measure_text(tok, tok_style).width, ts.max_width) + 2 * kPadX;
      const std::string* next = k + 1 < it.tokens.size() ? &it.tokens[k + 1] : nullptr;
      // Attached punctuation overlaps the previous box's right padding, so "end." reads as typed.
      double gap = k == 0 ? 0 : space_between(it.tokens[k - 1], tok, next) ? kGap : -kPadX;
      // Outlined boxes (a causal row's query and next token) keep clear of their neighbours.
      const int kk = static_cast<int>(k);
      if (marks && k > 0 && (kk == it.query || kk == it.query + 1 || (next_k >= 0 && kk == next_k + 1)))
        gap = std::max(gap, kQueryStroke + 0.5);
      if (x + gap + w > kMargin + width && x > kMargin) {
        x = kMargin;
        y += line_h + kLineGap + (marks ? kMarkRoom : 0);
        gap = 0;
      }
      x += gap;
      const double t = shades[i][k];
      Color fill = token_shade(t, opt);
      Rect r{x, y, w, line_h, fill};
      if (!std::isfinite(t)) {
        r.hatched = true;
        r.stroke = kBlack;
        r.stroke_width = 0.5;
      }
      list.add(r);
      const bool unseen = marks && static_cast<int>(k) > it.query + (next_k >= 0 ? 1 : 0);
      list.add(Text{{x + kPadX, y + kPadY}, tok, ts, unseen ? kUnseen : contrast_text_color(fill), HAlign::Left,
                    VAlign::Top});
      if (marks && static_cast<int>(k) == it.query) {
        // Solid outline just outside the box, so it shows on a dark fill and on white alike.
        const double o = kQueryStroke / 2;
        list.add(Rect{x - o, y - o, w + 2 * o, line_h + 2 * o, kTransparent, kQueryMark, kQueryStroke});
        qx = x, qy = y, qw = w;
      }
      if (static_cast<int>(k) == next_k) {
        const double o = kNextStroke / 2, x0 = x - o, y0 = y - o, x1 = x + w + o, y1 = y + line_h + o;
        for (auto [a, b] : {std::pair{Point{x0, y0}, Point{x1, y0}}, {Point{x1, y0}, Point{x1, y1}},
                            {Point{x1, y1}, Point{x0, y1}}, {Point{x0, y1}, Point{x0, y0}}})
          list.add(Line{a, b, kQueryMark, kNextStroke, false, 2.5});
        if (y == qy) {
          // An arrow over the line from the query's top to the next token's: up, across, down.
          const double ax = qx + qw / 2, bx = x + w / 2, top = y - kMarkRoom + 1, tip = y - kNextStroke;
          list.add(Polygon{{{ax, y - kQueryStroke}, {ax, top}, {bx, top}, {bx, tip - 3}}, false, kTransparent,
                           kQueryMark, 1.25});
          list.add(Polygon{{{bx - 2.75, tip - 3.5}, {bx + 2.75, tip - 3.5}, {bx, tip}}, true, kQueryMark, kTransparent, 0});
        }
      }
      if (boxes) boxes->push_back({static_cast<int>(i), static_cast<int>(k), x, y, w, line_h, fill});
      x += w;
    }
    y += line_h;
    if (i + 1 < items.size()) {
      y += 8;
      list.add(Line{{kMargin, y}, {kMargin + width, y}, Color::rgb8(0xdd, 0xdd, 0xdd), 0.75});
      y += 9;
    }
  }
  if (opt.legend && !items.empty()) {
    // A horizontal shade scale 0 .. 1 with its caption.
    y += 14;
    const double lw = std::min(220.0, width), lh = 9;
    const int steps = 110;
    for (int s = 0; s < steps; ++s) {
      double t0 = static_cast<double>(s) / steps;
      list.add(Rect{kMargin + lw * t0, y, lw / steps + 0.3, lh, token_shade((s + 0.5) / steps, opt)});
    }
    list.add(Rect{kMargin, y, lw, lh, kTransparent, Color::rgb8(0x99, 0x99, 0x99), 0.5});
    TextStyle ls;
    ls.size = 8;
    for (double t : {0.0, 0.5, 1.0})
      list.add(Text{{kMargin + lw * t, y + lh + 2}, format_value(t), ls, kBlack,
                    t == 0.0 ? HAlign::Left : t == 1.0 ? HAlign::Right : HAlign::Center, VAlign::Top});
    list.add(Text{{kMargin + lw + 10, y + lh / 2}, norm_caption(opt.norm, opt.quantity) + " · " + opt.cmap, ls, kGrey, HAlign::Left,
                  VAlign::Middle});
    y += lh + 2 + measure_text("0", ls).height;
  }
  list.height = y + kMargin;
  return list;
}

std::string text_view_html(const std::vector<TextViewItem>& items, const TextViewOptions& opt) {
  const auto shades = normalized_weights(items, opt);
  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>" +
      html_escape(opt.title.empty() ? "attention over words" : opt.title) +
      "</title>\n<style>\n"
      "body{font-family:sans-serif;max-width:" + fmt::format("{:.0f}", opt.width + 40) +
      "px;margin:2em auto;padding:0 1em;color:#111}\n"
      ".s{margin:0 0 1em;padding:0 0 .8em;border-bottom:1px solid #ddd;line-height:2.1;font-size:" +
      fmt::format("{:.0f}", opt.font_size * 1.35) + "px}\n"
      ".h{font-size:.8em;font-weight:bold;line-height:1.4}.ok{color:#1a7f37}.bad{color:#c62828}"
      ".n{color:#777;font-weight:normal;margin-left:.8em}\n"
      ".t{padding:.12em .16em;border-radius:3px;position:relative;cursor:default}\n"
      ".t:hover{outline:2px solid #2a6fdb}\n"
      ".t:hover::after{content:attr(data-w);position:absolute;left:0;top:-1.9em;background:#222;color:#fff;"
      "font-size:.7em;line-height:1.3;padding:.15em .45em;border-radius:3px;white-space:nowrap;z-index:2}\n"
      ".legend{font-size:.8em;color:#555}\n"
      ".q{color:" + css_color(kQueryMark) + "}.tq{outline:2px solid " + css_color(kQueryMark) +
      ";outline-offset:1px}.tn{outline:1.5px dashed " + css_color(kQueryMark) + ";outline-offset:1px}\n"
      "</style></head><body>\n";
  if (!opt.title.empty()) h += "<h2>" + html_escape(opt.title) + "</h2>\n";
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& it = items[i];
    h += "<div class=\"s\">";
    std::string head = header_text(it);
    if (!head.empty() || !it.note.empty()) {
      const char* cls = it.label.empty() || it.prediction.empty() ? "" : it.label == it.prediction ? " ok" : " bad";
      h += "<div class=\"h" + std::string(cls) + "\">" + html_escape(head);
      if (!it.note.empty()) h += "<span class=\"n\">" + html_escape(it.note) + "</span>";
      h += "</div>";
    }
    const bool marks = has_query(it);
    const int next_k = next_token_index(it);
    if (marks) h += "<div class=\"h q\">" + html_escape(query_caption(it)) + "</div>";
    for (size_t k = 0; k < it.tokens.size(); ++k) {
      const std::string* next = k + 1 < it.tokens.size() ? &it.tokens[k + 1] : nullptr;
      if (k > 0 && space_between(it.tokens[k - 1], it.tokens[k], next)) h += ' ';
      const double t = shades[i][k];
      Color fill = token_shade(t, opt);
      std::string label = std::isfinite(it.weights[k]) ? fmt::format("weight {:.4f} (shade {:.2f})", it.weights[k], t)
                                                       : std::string(std::isnan(it.weights[k]) ? "weight NaN"
                                                                     : it.weights[k] > 0  ? "weight +Inf"
                                                                                          : "weight -Inf");
      const int kk = static_cast<int>(k);
      const bool unseen = marks && kk > it.query + (next_k >= 0 ? 1 : 0);
      const char* mark = !marks ? "" : kk == it.query ? " tq" : kk == next_k ? " tn" : "";
      if (kk == it.query) label += " (query)";
      if (kk == next_k) label += " (next token)";
      h += fmt::format("<span class=\"t{}\" style=\"background:{};color:{}\" title=\"{}\" data-w=\"{}\">{}</span>", mark,
                       css_color(fill), css_color(unseen ? kUnseen : contrast_text_color(fill)), label, label,
                       html_escape(it.tokens[k]));
    }
    h += "</div>\n";
  }
  if (opt.legend) {
    h += "<p class=\"legend\">shade: " + html_escape(norm_caption(opt.norm, opt.quantity)) + " (" + html_escape(opt.cmap) + ") &nbsp;";
    for (int s = 0; s <= 10; ++s) {
      Color c = token_shade(s / 10.0, opt);
      h += fmt::format("<span class=\"t\" style=\"background:{};color:{}\">{}</span>", css_color(c),
                       css_color(contrast_text_color(c)), format_value(s / 10.0));
    }
    h += " &nbsp;hover a word to see its weight.</p>\n";
  }
  h += "</body></html>\n";
  return h;
}

void render_text(const std::vector<TextViewItem>& items, const TextViewOptions& opt, const std::filesystem::path& out,
                 const PaintOptions& paint) {
  std::string ext = out.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext == ".html" || ext == ".htm") {
    write_file_atomically(out, text_view_html(items, opt));
    return;
  }
  Format f = format_from_path(out);   // UsageError for anything else
  (void)f;
  paint_to_file(layout_text(items, opt), out, paint);
}

}  // namespace attnviz::render
