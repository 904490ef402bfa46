// Issue 14 (writes, limits, hostile files, messages): each case failed before its fix.
#include "test_safety_util.hpp"

#include <attnviz/error.hpp>
#include <attnviz/io/atomic_file.hpp>
#include <attnviz/io/limits.hpp>
#include <attnviz/io/npy.hpp>
#include <attnviz/io/npz.hpp>
#include <attnviz/io/printable.hpp>
#include <attnviz/io/safetensors.hpp>
#include <attnviz/render/plots.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>


using namespace attnviz;
using namespace attnviz::test;

namespace {

const std::string kSample = "'" + sample("alignment_6x7.safetensors").string() + "'";

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  ::lstat(p.c_str(), &st);
  return st.st_mode;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

}  // namespace

// Item 7: the temp name was "<out>.tmp.<pid>.<n>", opened with ofstream (follows symlinks): a
// link planted there made the write land in the link's target.
TEST_CASE("item 7: a symlink planted at the old predictable temp name does not redirect the write") {
  fs::path d = temp_dir("planted");
  const fs::path victim = d / "victim.txt", out = d / "out.txt";
  spit(victim, "precious");
  for (int n = 0; n < 32; ++n)
    fs::create_symlink(victim, d / ("out.txt.tmp." + std::to_string(::getpid()) + "." + std::to_string(n)));
  write_file_atomically(out, "new bytes");
  CHECK(slurp(victim) == "precious");
  CHECK(slurp(out) == "new bytes");
  // Only the output and the planted links: no temp file left behind.
  CHECK(count_files(d) == 2 + 32);
}

TEST_CASE("item 7: the temp file is removed when SIGTERM arrives during the write") {
  fs::path d = temp_dir("sigterm");
  // 8 GiB of zero pages that are never touched until written: the write runs long enough to be
  // interrupted, and costs no memory.
  const size_t n = size_t{8} << 30;
  void* mem = ::mmap(nullptr, n, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  REQUIRE(mem != MAP_FAILED);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::signal(SIGTERM, SIG_DFL);  // doctest installs its own handler; a CLI run has the default
    try {
      write_file_atomically(d / "big.bin", std::string_view(static_cast<const char*>(mem), n));
    } catch (...) {
    }
    ::_exit(0);
  }
  // Wait for the temp file to appear and grow, then stop the writer.
  bool seen = false;
  for (int i = 0; i < 20000 && !seen; ++i) {
    for (auto& e : fs::directory_iterator(d))
      if (e.path().filename().string().rfind(".big.bin.tmp-", 0) == 0 && fs::file_size(e.path()) > 0) seen = true;
    if (!seen) ::usleep(500);
  }
  CHECK(seen);
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::munmap(mem, n);
  CHECK(WIFSIGNALED(status));
  if (WIFSIGNALED(status)) CHECK(WTERMSIG(status) == SIGTERM);
  CHECK(count_files(d) == 0);
}

// Item 8: the rename replaced devices and symlinks with regular files.
TEST_CASE("item 8: -o to a device, FIFO or folder is refused; -o - writes to stdout; symlinks are followed") {
  fs::path d = temp_dir("outputs");
  {
    RunResult r = run_cli("render heatmap " + kSample + " -o /dev/null");
    CHECK(r.code == 2);
    CHECK(r.out.find("/dev/null: is a character device") != std::string::npos);
    CHECK(S_ISCHR(mode_of("/dev/null")));
  }
  {
    RunResult r = run_cli("render heatmap " + kSample + " -o /dev/full");
    CHECK(r.code == 2);
    CHECK(S_ISCHR(mode_of("/dev/full")));
  }
  {
    REQUIRE(::mkfifo((d / "fifo.png").c_str(), 0600) == 0);
    RunResult r = run_cli("render heatmap " + kSample + " -o " + q(d / "fifo.png"));
    CHECK(r.code == 2);
    CHECK(r.out.find("is a FIFO") != std::string::npos);
    CHECK(S_ISFIFO(mode_of(d / "fifo.png")));
  }
  {
    // Item 25: this said "cannot write: Success".
    fs::create_directories(d / "folder.png");
    RunResult r = run_cli("render heatmap " + kSample + " -o " + q(d / "folder.png"));
    CHECK(r.code == 2);
    CHECK(r.out.find("is a folder") != std::string::npos);
    CHECK(r.out.find("Success") == std::string::npos);
  }
  {
    RunResult r = run_cli("render heatmap " + kSample + " -o - > " + q(d / "stdout.png"));
    CHECK(r.code == 0);
    CHECK(slurp(d / "stdout.png").rfind("\x89PNG\r\n\x1a\n", 0) == 0);
  }
  {
    fs::create_directories(d / "real");
    spit(d / "real" / "fig.png", "old");
    fs::create_symlink(d / "real" / "fig.png", d / "link.png");
    RunResult r = run_cli("render heatmap " + kSample + " -o " + q(d / "link.png"));
    CHECK(r.code == 0);
    CHECK(fs::is_symlink(d / "link.png"));
    CHECK(slurp(d / "real" / "fig.png").rfind("\x89PNG", 0) == 0);
    CHECK(count_files(d / "real") == 1);  // the temp file went to the target's folder and is gone
  }
  {
    fs::create_symlink(d / "missing" / "x.png", d / "dangling.png");
    RunResult r = run_cli("render heatmap " + kSample + " -o " + q(d / "dangling.png"));
    CHECK(r.code == 2);
    CHECK(r.out.find("symlink") != std::string::npos);
  }
  {
    // Decision (README): -o creates missing folders, like mkdir -p.
    RunResult r = run_cli("render heatmap " + kSample + " -o " + q(d / "new" / "deeper" / "fig.svg"));
    CHECK(r.code == 0);
    CHECK(fs::is_regular_file(d / "new" / "deeper" / "fig.svg"));
  }
}

// Item 9: re-rendering turned a 0600 output into 0644.
TEST_CASE("item 9: replacing a file keeps its mode; a new file gets 0666 minus the umask") {
  fs::path d = temp_dir("mode");
  const fs::path out = d / "fig.png";
  REQUIRE(run_cli("render heatmap " + kSample + " -o " + q(out)).code == 0);
  const mode_t um = ::umask(022);
  ::umask(um);
  CHECK((mode_of(out) & 0777) == (0666 & ~um));
  fs::permissions(out, fs::perms::owner_read | fs::perms::owner_write);
  REQUIRE(run_cli("render heatmap " + kSample + " -o " + q(out)).code == 0);
  CHECK((mode_of(out) & 0777) == 0600);
  write_file_atomically(out, "x");
  CHECK((mode_of(out) & 0777) == 0600);
}

// Item 10: an 11.5 MB .npz whose member inflates to 11.8 GB took 63 s and 22.5 GB before refusal.
TEST_CASE("item 10: an npz bomb is refused from its declared size, before inflating") {
  const std::uint64_t data = 11'800'000'000ull / 4 * 4;
  const std::string head = npy_bytes("<f4", "(" + std::to_string(data / 4) + ",)", "");
  const std::string zip = zip_bytes({deflate_bomb("attention.npy", head, data)});
  CHECK(zip.size() < 16'000'000);
  CHECK(zip.size() > 10'000'000);  // an ordinary deflate ratio, not a forged size field
  const auto t0 = std::chrono::steady_clock::now();
  try {
    parse_npz(zip, "bomb.npz");
    FAIL("the bomb was accepted");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("--max-mib") != std::string::npos);
    CHECK(std::string(e.what()).find("11.0 GiB") != std::string::npos);
  }
  CHECK(seconds_since(t0) < 2.0);

  // The same construction, small enough to allow, inflates and passes its CRC (the bomb is real).
  const std::uint64_t small = 3 << 20;
  const std::string zs = zip_bytes({deflate_bomb("attention.npy", npy_bytes("<f4", "(786432,)", ""), small)});
  const auto members = parse_npz(zs, "small.npz");
  REQUIRE(members.size() == 1);
  CHECK(members[0].array.values.size() == small / 4);

  // --max-mib lowers the limit for every loader.
  set_max_array_bytes(1 << 20);
  CHECK_THROWS_WITH_AS(parse_npz(zs, "small.npz"), doctest::Contains("--max-mib"), InputError);
  CHECK_THROWS_WITH_AS(parse_npy(npy_bytes("<f4", "(524288,)", std::string(2 << 20, '\0')), "a.npy"),
                       doctest::Contains("over the memory limit of 1.0 MiB"), InputError);
  set_max_array_bytes(0);
  CHECK(max_array_bytes() == default_max_array_bytes());

  RunResult r = run_cli("--max-mib 1 inspect " + kSample);
  CHECK(r.code == 0);
}

// Item 11: --threads 100000 allocated a model copy per thread (15 GB) before failing.
TEST_CASE("item 11: --threads is bounded with a usage error") {
  RunResult r = run_cli("--threads 100000 inspect " + kSample);
  CHECK(r.code == 1);
  CHECK(r.out.find("--threads 100000 is out of range") != std::string::npos);
  CHECK(run_cli("--threads 1 inspect " + kSample).code == 0);
}

// Item 12: control characters from files reached the terminal.
TEST_CASE("item 12: printable_for_terminal shows controls, C1, bidi overrides and bad UTF-8 escaped") {
  CHECK(printable_for_terminal("\x1b]0;pwned\x07") == "\\e]0;pwned\\x07");
  CHECK(printable_for_terminal("a\rb\nc\td") == "a\\rb\\nc\\td");
  CHECK(printable_for_terminal("\xc2\x9b" "31m") == "\\u{9B}31m");  // C1 CSI
  CHECK(printable_for_terminal("\xe2\x80\xae" "live") == "\\u{202E}live");
  CHECK(printable_for_terminal("\xe2\x81\xa6x\xe2\x81\xa9") == "\\u{2066}x\\u{2069}");
  CHECK(printable_for_terminal("caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80") == "caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80");
  CHECK(printable_for_terminal("\xff\xc3") == "\\xFF\\xC3");
  CHECK_FALSE(has_unprintable("plain text, \xc3\xa9"));
  CHECK(has_unprintable("\x7f"));
}

TEST_CASE("item 12: an error message quoting a file's bytes escapes the terminal controls") {
  fs::path d = temp_dir("escape");
  // A member name with a window-title sequence, of a dtype that is refused: the name is quoted.
  spit(d / "evil.npz", zip_bytes({stored("\x1b]0;owned\x07.npy", npy_bytes("<i8", "(2,)", std::string(16, '\0')))}));
  RunResult r = run_cli("inspect " + q(d / "evil.npz"));
  CHECK(r.code == 2);
  CHECK(r.out.find('\x1b') == std::string::npos);
  CHECK(r.out.find('\x07') == std::string::npos);
  CHECK(r.out.find("\\e]0;owned\\x07") != std::string::npos);

  // inspect prints tokens: a --tokens line with a title sequence and a bidi override.
  spit(d / "m.npy", npy_bytes("<f4", "(2, 2)", f32_bytes({0.5f, 0.5f, 1.0f, 0.0f})));
  spit(d / "tokens.txt", "\x1b]0;title\x07\n\xe2\x80\xae" "evil\n");
  r = run_cli("inspect " + q(d / "m.npy") + " --tokens " + q(d / "tokens.txt"));
  CHECK_MESSAGE(r.code == 0, r.out);
  CHECK(r.out.find('\x1b') == std::string::npos);
  CHECK(r.out.find("\xe2\x80\xae") == std::string::npos);
  CHECK(r.out.find("\\u{202E}evil") != std::string::npos);
}

TEST_CASE("item 12: figures show bidi overrides and controls visibly") {
  using render::figure_text;
  CHECK(figure_text("\xe2\x80\xae" "evil", false, true) == "\\u{202E}evil");
  CHECK(figure_text("a\x1b[31mb", false, true) == "a\\e[31mb");
  CHECK(figure_text("two\nlines", false, false) == "two\nlines");
}

// Item 13: four 12.5 MB tokens hung render heatmap/lines (layout time grows with label length).
TEST_CASE("item 13: huge tokens are cut before layout; heatmap and lines finish quickly") {
  using render::figure_text;
  const std::string big(12'500'000, 'x');
  CHECK(figure_text(big, false, true).size() < 300);
  CHECK(figure_text(big, false, false).size() < 4200);
  // A cut never splits a UTF-8 sequence.
  const std::string e(3000, 'a');
  const std::string cut = figure_text(std::string(255, 'a') + "\xc3\xa9" + e, false, true);
  CHECK(valid_utf8(cut));

  fs::path d = temp_dir("hugetokens");
  spit(d / "m.npy", npy_bytes("<f4", "(4, 4)", f32_bytes(std::vector<float>(16, 0.25f))));
  std::string toks;
  for (int i = 0; i < 4; ++i) toks += std::string(12'500'000, static_cast<char>('a' + i)) + "\n";
  spit(d / "tokens.txt", toks);
  for (const char* kind : {"heatmap", "lines"}) {
    const auto t0 = std::chrono::steady_clock::now();
    RunResult r = run_cli(std::string("render ") + kind + " " + q(d / "m.npy") + " --tokens " + q(d / "tokens.txt") +
                          " -o " + q(d / (std::string(kind) + ".png")));
    CHECK_MESSAGE(r.code == 0, r.out);
    CHECK(seconds_since(t0) < 20);
  }
}

// Item 18: one object member made the whole archive fail.
TEST_CASE("item 18: an npz with a pickled member loads its float members and names the skipped one") {
  const std::string pickle = "\x80\x04\x95" + std::string(20, '\0');
  const std::string zip =
      zip_bytes({stored("attention.npy", npy_bytes("<f4", "(2, 2)", f32_bytes({0.5f, 0.5f, 1.0f, 0.0f}))),
                 stored("lengths.npy", npy_bytes("|O", "(3,)", pickle))});
  std::vector<NpzSkipped> skipped;
  const auto members = parse_npz(zip, "x.npz", &skipped);
  REQUIRE(members.size() == 1);
  CHECK(members[0].name == "attention");
  REQUIRE(skipped.size() == 1);
  CHECK(skipped[0].name == "lengths");
  CHECK(skipped[0].reason.find("pickled object array: attnviz never unpickles") != std::string::npos);
  // Without a list to report into, the skip is an error that names the member.
  CHECK_THROWS_WITH_AS(parse_npz(zip, "x.npz"), doctest::Contains("'lengths' has dtype '|O'"), InputError);

  fs::path d = temp_dir("pickled");
  spit(d / "mixed.npz", zip);
  RunResult r = run_cli("inspect " + q(d / "mixed.npz"));
  CHECK_MESSAGE(r.code == 0, r.out);
  CHECK(r.out.find("lengths") != std::string::npos);
  CHECK(r.out.find("never unpickles") != std::string::npos);

  spit(d / "obj.npy", npy_bytes("|O", "(3,)", pickle));
  r = run_cli("inspect " + q(d / "obj.npy"));
  CHECK(r.code == 2);
  CHECK(r.out.find("pickled object array: attnviz never unpickles; save a float array") != std::string::npos);
}

// Item 24: 1x100000 hit cairo's 32767-pixel side limit after allocating 1 GB; 1000x12 drew a
// 652x8120 px strip.
TEST_CASE("item 24: figure size follows the matrix's aspect within bounds") {
  auto layout = [](int q, int k) {
    render::LabelledMatrix m;
    m.values = Mat::Constant(q, k, 0.5f);
    return render::layout_heatmap(m, render::HeatmapOptions{});
  };
  const auto tall = layout(1000, 12);
  CHECK(tall.height < 2700);
  CHECK(tall.height / tall.width < 5.5);
  const auto wide = layout(1, 100000);
  CHECK(wide.width < 2700);
  const auto square = layout(6, 7);  // small matrices keep their square 40 pt cells
  CHECK(square.width > 7 * 40);

  fs::path d = temp_dir("aspect");
  spit(d / "wide.npy", npy_bytes("<f4", "(1, 100000)", f32_bytes(std::vector<float>(100000, 0.5f))));
  RunResult r = run_cli("render heatmap " + q(d / "wide.npy") + " -o " + q(d / "wide.png"));
  CHECK_MESSAGE(r.code == 0, r.out);
  // An explicit --cell that cannot fit is refused before allocating, naming the limit.
  r = run_cli("render heatmap " + q(d / "wide.npy") + " --cell 4 -o " + q(d / "wide2.png"));
  CHECK(r.code == 1);
  CHECK(r.out.find("32767") != std::string::npos);
  CHECK_FALSE(fs::exists(d / "wide2.png"));
}

// Item 25 (messages in this half): safetensors header starting with whitespace.
TEST_CASE("item 25: a safetensors header that starts with whitespace is read") {
  const std::string st = safetensors_bytes("  \n{\"a\": {\"dtype\": \"F32\", \"shape\": [1, 2], \"data_offsets\": [0, 8]}}",
                                           f32_bytes({0.25f, 0.75f}));
  CHECK(looks_like_safetensors(st.substr(0, 64)));
  const StFile f = parse_safetensors(st, "ws.safetensors");
  REQUIRE(f.tensors.size() == 1);
  CHECK(f.tensors[0].data[1] == 0.75f);
  fs::path d = temp_dir("ws");
  spit(d / "ws.safetensors", st);
  RunResult r = run_cli("inspect " + q(d / "ws.safetensors"));
  CHECK_MESSAGE(r.code == 0, r.out);
}

TEST_CASE("item 25: out-of-memory and limit messages name the size and the option") {
  CHECK(human_bytes(512) == "512 bytes");
  CHECK(human_bytes(3u << 20) == "3.0 MiB");
  CHECK(human_bytes(std::uint64_t{3} << 30) == "3.0 GiB");
  CHECK_THROWS_WITH_AS(check_array_bytes(max_array_bytes() + 1, "f.npy", "npy array of shape (9,)"),
                       doctest::Contains("f.npy: npy array of shape (9,) needs"), InputError);
}
