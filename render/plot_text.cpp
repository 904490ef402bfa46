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
  return it;
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
      if (x + gap + w > kMargin + width && x > kMargin) {
        x = kMargin;
        y += line_h + kLineGap;
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
      list.add(Text{{x + kPadX, y + kPadY}, tok, ts, contrast_text_color(fill), HAlign::Left, VAlign::Top});
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
    for (size_t k = 0; k < it.tokens.size(); ++k) {
      const std::string* next = k + 1 < it.tokens.size() ? &it.tokens[k + 1] : nullptr;
      if (k > 0 && space_between(it.tokens[k - 1], it.tokens[k], next)) h += ' ';
      const double t = shades[i][k];
      Color fill = token_shade(t, opt);
      std::string label = std::isfinite(it.weights[k]) ? fmt::format("weight {:.4f} (shade {:.2f})", it.weights[k], t)
                                                       : std::string(std::isnan(it.weights[k]) ? "weight NaN"
                                                                     : it.weights[k] > 0  ? "weight +Inf"
                                                                                          : "weight -Inf");
      h += fmt::format("<span class=\"t\" style=\"background:{};color:{}\" title=\"{}\" data-w=\"{}\">{}</span>",
                       css_color(fill), css_color(contrast_text_color(fill)), label, label, html_escape(it.tokens[k]));
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
