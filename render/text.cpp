// Text measuring with Pango (thread-local measuring context), font fitting, markup escaping.
#include "text.hpp"

#include <attnviz/error.hpp>
#include <attnviz/io/printable.hpp>
#include <attnviz/render/escape.hpp>

#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <pango/pangofc-fontmap.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <mutex>

namespace attnviz::render {

namespace detail {

void set_scale_independent_fonts(PangoContext* context) {
  cairo_font_options_t* fo = cairo_font_options_create();
  cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
  cairo_font_options_set_hint_style(fo, CAIRO_HINT_STYLE_NONE);
  cairo_font_options_set_antialias(fo, CAIRO_ANTIALIAS_GRAY);
  pango_cairo_context_set_font_options(context, fo);
  cairo_font_options_destroy(fo);
  // Glyph positions exactly as the font says, not rounded to whole units of the layout's space: the
  // painter lays text out in points at an identity matrix (see Painter::draw(Text)), and rounding
  // there would snap glyphs to a 1 pt grid.
  pango_context_set_round_glyph_positions(context, FALSE);
}

namespace {

// The built-in font configuration. Debian's fontconfig rules (60-latin.conf) put DejaVu Sans first
// for "Sans", and Pango draws a character with the first face of the sorted set that has it, so a
// string whose every character DejaVu Sans has is drawn with DejaVu Sans under the system
// configuration too. Reading that configuration (~54 XML files, the font caches) is ~13% of an
// `attnviz render heatmap` call; a configuration with just these four files costs ~1 ms.
constexpr const char* kDejaVuDir = "/usr/share/fonts/truetype/dejavu/";
constexpr const char* kDejaVuFiles[4] = {"DejaVuSans.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-Bold.ttf",
                                         "DejaVuSans-BoldOblique.ttf"};  // index: 2 * bold + italic

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// The built-in path is used only where it provably picks the system's faces: no configuration of
// the user's or the environment's (which could prefer another family), no /etc/fonts/local.conf,
// and a C or English locale (Pango asks fontconfig for the locale's language, and for some,
// e.g. Japanese, Debian's rules put another face first even for Latin letters).
// ATTNVIZ_FONTCONFIG=system turns it off.
bool builtin_allowed() {
  auto set = [](const char* name) {
    const char* v = std::getenv(name);
    return v && *v;
  };
  if (const char* v = std::getenv("ATTNVIZ_FONTCONFIG"); v && std::string(v) == "system") return false;
  if (set("FONTCONFIG_FILE") || set("FONTCONFIG_PATH") || set("FONTCONFIG_SYSROOT")) return false;
  if (exists("/etc/fonts/local.conf")) return false;
  const char* home = std::getenv("HOME");
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  if (xdg && *xdg && exists(std::string(xdg) + "/fontconfig")) return false;
  if (home && *home && (exists(std::string(home) + "/.config/fontconfig") || exists(std::string(home) + "/.fonts.conf")))
    return false;
  const std::string lang = pango_language_to_string(pango_language_get_default());
  if (!(lang == "c" || lang == "posix" || lang.rfind("en", 0) == 0)) return false;
  for (const char* f : kDejaVuFiles)
    if (!exists(std::string(kDejaVuDir) + f)) return false;
  return true;
}

struct FontConfigs {
  FcConfig* builtin = nullptr;             // null: the built-in path is off
  const FcCharSet* charsets[4] = {};       // of kDejaVuFiles
  FcConfig* system = nullptr;              // made on first use of the system path when builtin is set
  std::once_flag system_once;
};

FontConfigs& font_configs() {
  static FontConfigs* fc = [] {
    auto* c = new FontConfigs;  // lives as long as the process (the font maps refer to it)
    if (!builtin_allowed()) return c;
    FcConfig* cfg = FcConfigCreate();
    bool ok = cfg != nullptr;
    for (const char* f : kDejaVuFiles)
      ok = ok && FcConfigAppFontAddFile(cfg, reinterpret_cast<const FcChar8*>((std::string(kDejaVuDir) + f).c_str()));
    FcFontSet* set = ok ? FcConfigGetFonts(cfg, FcSetApplication) : nullptr;
    ok = ok && set && set->nfont == 4;
    for (int i = 0; ok && i < set->nfont; ++i) {
      FcChar8* file = nullptr;
      FcCharSet* cs = nullptr;
      ok = FcPatternGetString(set->fonts[i], FC_FILE, 0, &file) == FcResultMatch &&
           FcPatternGetCharSet(set->fonts[i], FC_CHARSET, 0, &cs) == FcResultMatch;
      for (int k = 0; ok && k < 4; ++k)
        if (std::string(reinterpret_cast<const char*>(file)) == std::string(kDejaVuDir) + kDejaVuFiles[k])
          c->charsets[k] = cs;
    }
    for (int k = 0; ok && k < 4; ++k) ok = c->charsets[k] != nullptr;
    // Made current before any font map exists, so Pango's start-up (FcInit in a thread of its own)
    // finds a configuration and reads no XML; the system path gets its configuration explicitly.
    if (ok && FcConfigSetCurrent(cfg)) {
      c->builtin = cfg;
    } else {
      for (auto& cs : c->charsets) cs = nullptr;
      if (cfg) FcConfigDestroy(cfg);
    }
    return c;
  }();
  return *fc;
}

// Characters of the scripts whose system fallback is DejaVu Sans for "Sans" in a C or English
// locale (Latin, Greek, Cyrillic, punctuation, arrows, mathematical operators); bidirectional and
// zero-width controls and combining marks are left to the system path.
bool builtin_script(char32_t c) {
  return c == '\n' || c == '\t' || (c >= 0x20 && c <= 0x7E) || (c >= 0xA0 && c <= 0x24F) ||
         (c >= 0x370 && c <= 0x4FF) || (c >= 0x1E00 && c <= 0x1EFF) || (c >= 0x2010 && c <= 0x2027) ||
         (c >= 0x2030 && c <= 0x205E) || (c >= 0x2070 && c <= 0x214F) || (c >= 0x2190 && c <= 0x22FF) ||
         (c >= 0x25A0 && c <= 0x25FF);
}

bool family_is_sans(const std::string& family) {
  std::string f;
  for (char ch : family) f += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return f == "sans" || f == "sans-serif" || f == "dejavu sans";
}

PangoFontMap* font_map(FontPath path) {
  FontConfigs& fc = font_configs();
  if (!fc.builtin) return pango_cairo_font_map_get_default();  // the system configuration, as before
  thread_local PangoFontMap* maps[2] = {nullptr, nullptr};
  PangoFontMap*& map = maps[static_cast<int>(path)];
  if (!map) {
    FcConfig* cfg = fc.builtin;
    if (path == FontPath::System) {
      std::call_once(fc.system_once, [&fc] { fc.system = FcInitLoadConfigAndFonts(); });
      cfg = fc.system;
    }
    map = pango_cairo_font_map_new_for_font_type(CAIRO_FONT_TYPE_FT);
    pango_fc_font_map_set_config(PANGO_FC_FONT_MAP(map), cfg);
  }
  return map;
}

}  // namespace

bool builtin_font_config_active() { return font_configs().builtin != nullptr; }

FontPath font_path(const std::string& text, const TextStyle& style) {
  FontConfigs& fc = font_configs();
  if (!fc.builtin || style.markup || !family_is_sans(style.family)) return FontPath::System;
  const FcCharSet* cs = fc.charsets[2 * style.bold + style.italic];
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    char32_t c;
    size_t len;
    if (s[i] < 0x80) c = s[i], len = 1;
    else if ((s[i] & 0xE0) == 0xC0) c = s[i] & 0x1F, len = 2;
    else if ((s[i] & 0xF0) == 0xE0) c = s[i] & 0x0F, len = 3;
    else if ((s[i] & 0xF8) == 0xF0) c = s[i] & 0x07, len = 4;
    else return FontPath::System;
    if (i + len > n) return FontPath::System;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return FontPath::System;
      c = (c << 6) | (s[i + k] & 0x3F);
    }
    if (!builtin_script(c)) return FontPath::System;
    if (c != '\n' && c != '\t' && !FcCharSetHasChar(cs, c)) return FontPath::System;
    i += len;
  }
  return FontPath::Builtin;
}

Layouts::~Layouts() {
  for (PangoLayout* l : layouts_)
    if (l) g_object_unref(l);
}

PangoLayout* Layouts::get(FontPath path) {
  PangoLayout*& layout = layouts_[static_cast<int>(path)];
  if (!layout) {
    PangoContext* context = pango_font_map_create_context(font_map(path));
    pango_cairo_update_context(cr_, context);
    // pango_cairo_update_context copied the cairo context's scale (the PNG's pixels per point);
    // text is laid out in points at the identity, like measure_text, so both share Pango's font sets.
    if (identity_) pango_context_set_matrix(context, nullptr);
    set_scale_independent_fonts(context);
    layout = pango_layout_new(context);
    g_object_unref(context);
  }
  return layout;
}

}  // namespace detail

std::string figure_text(const std::string& text, bool markup, bool one_line) {
  const size_t max_bytes = markup ? text.size() : one_line ? 256 : 4096;
  std::string cut = text;
  if (cut.size() > max_bytes) {
    size_t n = max_bytes;
    while (n > 0 && (static_cast<unsigned char>(cut[n]) & 0xC0) == 0x80) --n;  // UTF-8 boundary
    cut.resize(n);
    cut += "\u2026";
  }
  // Newlines and tabs lay out as intended; everything else a shaper would act on is shown escaped.
  std::string out;
  size_t start = 0;
  while (true) {
    const size_t end = cut.find_first_of("\n\t", start);
    out += printable_for_terminal(std::string_view(cut).substr(start, end == std::string::npos ? end : end - start));
    if (end == std::string::npos) break;
    out += cut[end];
    start = end + 1;
  }
  return out;
}

namespace detail {

PreparedLayout setup_layout(Layouts& layouts, const std::string& raw, const TextStyle& style) {
  const std::string text = figure_text(raw, style.markup, style.max_width > 0);
  PangoLayout* layout = layouts.get(font_path(text, style));
  // A size that is not a positive number draws nothing visible rather than dividing by zero.
  const double f = std::isfinite(style.size) && style.size > 0 ? style.size / kLayoutSize : 1e-3;
  PangoFontDescription* fd = pango_font_description_new();
  pango_font_description_set_family(fd, style.family.c_str());
  pango_font_description_set_absolute_size(fd, kLayoutSize * PANGO_SCALE);  // points = user units
  pango_font_description_set_weight(fd, style.bold ? PANGO_WEIGHT_BOLD : PANGO_WEIGHT_NORMAL);
  pango_font_description_set_style(fd, style.italic ? PANGO_STYLE_ITALIC : PANGO_STYLE_NORMAL);
  pango_layout_set_font_description(layout, fd);
  pango_font_description_free(fd);
  if (style.markup) {
    GError* err = nullptr;
    if (!pango_parse_markup(text.c_str(), -1, 0, nullptr, nullptr, nullptr, &err)) {
      std::string msg = err ? err->message : "bad markup";
      if (err) g_error_free(err);
      throw InputError("", "text markup does not parse: " + msg);
    }
    pango_layout_set_markup(layout, text.c_str(), -1);
  } else {
    pango_layout_set_attributes(layout, nullptr);
    pango_layout_set_text(layout, text.c_str(), -1);
  }
  if (style.max_width > 0) {
    pango_layout_set_width(layout, static_cast<int>(style.max_width / f * PANGO_SCALE));
    pango_layout_set_ellipsize(layout, PANGO_ELLIPSIZE_END);
    pango_layout_set_wrap(layout, PANGO_WRAP_WORD);
    pango_layout_set_height(layout, -1);  // one line
  } else if (style.wrap_width > 0) {
    pango_layout_set_ellipsize(layout, PANGO_ELLIPSIZE_NONE);
    pango_layout_set_width(layout, static_cast<int>(style.wrap_width / f * PANGO_SCALE));
    pango_layout_set_wrap(layout, PANGO_WRAP_WORD_CHAR);
  } else {
    pango_layout_set_ellipsize(layout, PANGO_ELLIPSIZE_NONE);
    pango_layout_set_width(layout, -1);
  }
  return {layout, f};
}

}  // namespace detail

namespace {
// A 1x1 image surface + Pango layout per thread, reused for every measurement.
struct Measurer {
  cairo_surface_t* surface = nullptr;
  cairo_t* cr = nullptr;
  std::unique_ptr<detail::Layouts> layouts;
  Measurer() {
    surface = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 1, 1);
    cr = cairo_create(surface);
    layouts = std::make_unique<detail::Layouts>(cr, false);
  }
  ~Measurer() {
    layouts.reset();
    cairo_destroy(cr);
    cairo_surface_destroy(surface);
  }
};
Measurer& measurer() {
  thread_local Measurer m;
  return m;
}
}  // namespace

TextExtent measure_text(const std::string& text, const TextStyle& style) {
  Measurer& m = measurer();
  const auto [layout, f] = detail::setup_layout(*m.layouts, text, style);
  PangoRectangle logical;
  pango_layout_get_extents(layout, nullptr, &logical);
  TextExtent e;
  e.width = logical.width * f / PANGO_SCALE;
  e.height = logical.height * f / PANGO_SCALE;
  e.baseline = pango_layout_get_baseline(layout) * f / PANGO_SCALE;
  return e;
}

double fit_font_size(const std::vector<std::string>& texts, const TextStyle& style, double max_width,
                     double max_height, double min_size, double max_size) {
  // Metrics are unhinted, so extents scale linearly with the size: measure once at a reference
  // size and solve for the largest size that fits, then snap down to 0.5 pt.
  TextStyle ref = style;
  ref.size = 10;
  ref.max_width = 0;
  ref.wrap_width = 0;
  double widest = 0, tallest = 0;
  for (const auto& t : texts) {
    TextExtent e = measure_text(t, ref);
    widest = std::max(widest, e.width);
    tallest = std::max(tallest, e.height);
  }
  double size = max_size;
  if (widest > 0) size = std::min(size, 10 * max_width / widest);
  if (tallest > 0) size = std::min(size, 10 * max_height / tallest);
  size = std::floor(size * 2) / 2;
  return std::clamp(size, min_size, max_size);
}

std::string escape_markup(const std::string& text) { return html_escape(text); }

bool has_all_glyphs(const std::string& text, const TextStyle& style) {
  Measurer& m = measurer();
  TextStyle s = style;
  s.max_width = 0;
  s.wrap_width = 0;
  return pango_layout_get_unknown_glyphs_count(detail::setup_layout(*m.layouts, text, s).layout) == 0;
}

}  // namespace attnviz::render
