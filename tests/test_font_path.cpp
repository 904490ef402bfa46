// Issue 15: text that DejaVu Sans draws under the system font configuration anyway is laid out with
// a fontconfig configuration built in code (no XML read); everything else (CJK, markup, other
// families) with the system configuration, so fallback fonts are unchanged. Both give the same pixels.
#include <doctest/doctest.h>

#include <attnviz/render/draw.hpp>

#include <fontconfig/fontconfig.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "text.hpp"

using namespace attnviz;
using namespace attnviz::render;
using namespace attnviz::test;
using detail::FontPath;

namespace {

const char* kDejaVu = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

// Whether this environment lets the built-in configuration be used (see text.cpp): the test's
// checks of the fast path need it; the system path is checked either way.
bool builtin_expected() {
  for (const char* v : {"ATTNVIZ_FONTCONFIG", "FONTCONFIG_FILE", "FONTCONFIG_PATH", "FONTCONFIG_SYSROOT"})
    if (const char* s = std::getenv(v); s && *s) return false;
  const char* home = std::getenv("HOME");
  if (home && (fs::exists(std::string(home) + "/.config/fontconfig") || fs::exists(std::string(home) + "/.fonts.conf")))
    return false;
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  if (xdg && *xdg && fs::exists(std::string(xdg) + "/fontconfig")) return false;
  return fs::exists(kDejaVu) && !fs::exists("/etc/fonts/local.conf");
}

// A CJK face of the system configuration that has U+6CE8 (注), if any is installed.
bool system_has_cjk_font() {
  FcConfig* cfg = FcInitLoadConfigAndFonts();
  FcPattern* p = FcPatternCreate();
  FcCharSet* cs = FcCharSetCreate();
  FcCharSetAddChar(cs, 0x6CE8);
  FcPatternAddCharSet(p, FC_CHARSET, cs);
  FcObjectSet* os = FcObjectSetBuild(FC_FILE, nullptr);
  FcFontSet* set = FcFontList(cfg, p, os);
  const bool found = set && set->nfont > 0;
  if (set) FcFontSetDestroy(set);
  FcObjectSetDestroy(os);
  FcCharSetDestroy(cs);
  FcPatternDestroy(p);
  FcConfigDestroy(cfg);
  return found;
}

// The file the system configuration draws "Sans" with in this style.
std::string system_sans_file(const char* style) {
  FcConfig* cfg = FcInitLoadConfigAndFonts();
  FcPattern* p = FcNameParse(reinterpret_cast<const FcChar8*>((std::string("Sans") + style).c_str()));
  FcConfigSubstitute(cfg, p, FcMatchPattern);
  FcDefaultSubstitute(p);
  FcResult r;
  FcPattern* m = FcFontMatch(cfg, p, &r);
  std::string file;
  FcChar8* f = nullptr;
  if (m && FcPatternGetString(m, FC_FILE, 0, &f) == FcResultMatch) file = reinterpret_cast<const char*>(f);
  if (m) FcPatternDestroy(m);
  FcPatternDestroy(p);
  FcConfigDestroy(cfg);
  return file;
}

std::string npy_f32(int n) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(n) + ", " +
                       std::to_string(n) + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = std::string("\x93NUMPY\x01\x00", 8) + u16(static_cast<unsigned>(header.size())) + header;
  for (int i = 0; i < n * n; ++i) {
    float v = static_cast<float>((i * 37) % 101) / 101.0f;
    out.append(reinterpret_cast<const char*>(&v), 4);
  }
  return out;
}

// Runs attnviz with an environment prefix; returns the exit code.
int run_env(const std::string& env, const std::string& args) {
  std::string cmd = env + " '" + ATTNVIZ_EXE + "' " + args + " >/dev/null 2>&1";
  return WEXITSTATUS(std::system(cmd.c_str()));
}

}  // namespace

TEST_CASE("the system configuration draws Sans with the four DejaVu Sans files the built-in one holds") {
  if (!fs::exists(kDejaVu)) {
    MESSAGE("DejaVu Sans not installed: nothing to compare");
    return;
  }
  CHECK(system_sans_file("") == "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf");
  CHECK(system_sans_file(":bold") == "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf");
  CHECK(system_sans_file(":italic") == "/usr/share/fonts/truetype/dejavu/DejaVuSans-Oblique.ttf");
  CHECK(system_sans_file(":bold:italic") == "/usr/share/fonts/truetype/dejavu/DejaVuSans-BoldOblique.ttf");
}

TEST_CASE("Latin, Greek and Cyrillic plain Sans text takes the built-in path; CJK, markup and other families the system one") {
  TextStyle st;
  CHECK(detail::font_path("注意力", st) == FontPath::System);
  CHECK(detail::font_path("token \xF0\x9F\x98\x80", st) == FontPath::System);  // emoji
  CHECK(detail::font_path("\xE2\x80\x8F" "abc", st) == FontPath::System);      // right-to-left mark
  CHECK(detail::font_path("\xff\xfe", st) == FontPath::System);                // not UTF-8
  TextStyle mono = st;
  mono.family = "Monospace";
  CHECK(detail::font_path("abc", mono) == FontPath::System);
  TextStyle markup = st;
  markup.markup = true;
  CHECK(detail::font_path("<b>abc</b>", markup) == FontPath::System);
  if (!builtin_expected()) {
    CHECK_FALSE(detail::builtin_font_config_active());
    MESSAGE("a fontconfig configuration of the user or the environment, or no DejaVu Sans: built-in path off");
    return;
  }
  CHECK(detail::builtin_font_config_active());
  CHECK(detail::font_path("token07 café 0.25", st) == FontPath::Builtin);
  CHECK(detail::font_path("Ωμέγα привет x→y≤z “q”–…\n\tend", st) == FontPath::Builtin);
  TextStyle bold = st;
  bold.bold = true;
  bold.italic = true;
  CHECK(detail::font_path("Attention, layer 3", bold) == FontPath::Builtin);
  // Laying Latin text out reads no XML: the current configuration is the built-in one, with no files.
  measure_text("token07 café", st);
  FcStrList* files = FcConfigGetConfigFiles(FcConfigGetCurrent());
  CHECK(FcStrListNext(files) == nullptr);
  FcStrListDone(files);
}

TEST_CASE("a CJK token is drawn with the system's fallback font, in the same process as Latin text") {
  TextStyle st;
  measure_text("token07", st);
  if (!system_has_cjk_font()) {
    CHECK(detail::font_path("注意力", st) == FontPath::System);
    MESSAGE("no CJK font installed: only the choice of the system path is checked");
    return;
  }
  CHECK(has_all_glyphs("注意力", st));  // a glyph, not a box
  CHECK(measure_text("注意力", st).width > 0);
}

TEST_CASE("the built-in path draws the same pixels as the system configuration (attnviz render heatmap)") {
  const fs::path dir = temp_dir("pixels");
  spit(dir / "r.npy", npy_f32(16));
  std::vector<std::string> latin, cjk;
  for (int i = 0; i < 16; ++i) latin.push_back("tok" + std::to_string(i));
  latin[1] = "café";
  latin[2] = "Ωμέγα";
  latin[3] = "привет";
  latin[4] = "x→y≤z";
  latin[5] = "“q”–…";
  cjk = latin;
  cjk[6] = "注意力";
  for (const auto& [name, toks] : {std::pair{"latin", latin}, std::pair{"cjk", cjk}}) {
    std::string text;
    for (const auto& t : toks) text += t + "\n";
    spit(dir / (std::string(name) + ".txt"), text);
    const std::string args = "render heatmap '" + (dir / "r.npy").string() + "' --tokens '" +
                             (dir / (std::string(name) + ".txt")).string() + "' --title 'Layer 1 — héad 2' -o '";
    REQUIRE(run_env("", args + (dir / (std::string(name) + "_default.png")).string() + "'") == 0);
    REQUIRE(run_env("ATTNVIZ_FONTCONFIG=system", args + (dir / (std::string(name) + "_system.png")).string() + "'") == 0);
    const std::string a = slurp(dir / (std::string(name) + "_default.png"));
    const std::string b = slurp(dir / (std::string(name) + "_system.png"));
    CHECK(a.size() > 1000);
    CHECK_MESSAGE(a == b, name);
  }
  // The two images differ where the tokens differ: the CJK token is drawn, not dropped.
  CHECK(slurp(dir / "latin_default.png") != slurp(dir / "cjk_default.png"));
}
