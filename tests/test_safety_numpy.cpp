// Issue 14 target: every .npy/.npz numpy 1.24 writes for float dtypes (float16/32/64, longdouble;
// both byte orders; 1-D to 5-D; C, Fortran and non-contiguous) loads with the right values, and
// every unsupported dtype gets a message that says what to save instead. The files are made by
// tests/data/numpy/make_zoo.py; without python3-numpy the test exits 77 (CTest: skipped).
#include "test_util.hpp"

#include <attnviz/error.hpp>
#include <attnviz/io/npy.hpp>
#include <attnviz/io/npz.hpp>

#include <doctest/doctest.h>

#include <cstdlib>

using namespace attnviz;
using namespace attnviz::test;

namespace {

// The zoo, made once per run; exits 77 when numpy is not installed.
const fs::path& zoo() {
  static const fs::path dir = [] {
    fs::path d = fs::path(ATTNVIZ_TEST_TMP) / "zoo";
    fs::remove_all(d);
    fs::create_directories(d);
    const std::string py = fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
    const std::string cmd = py + " -c 'import numpy' 2>/dev/null";
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr, "SKIPPED: python3-numpy is not installed (scripts/setup --test installs it)\n");
      std::exit(77);
    }
    const std::string make = py + " '" + (source_dir() / "tests/data/numpy/make_zoo.py").string() + "' '" +
                             d.string() + "'";
    if (std::system(make.c_str()) != 0) {
      std::fprintf(stderr, "make_zoo.py failed\n");
      std::exit(1);
    }
    return d;
  }();
  return dir;
}

void check_values(const NpyArray& a, const std::string& what) {
  INFO(what);
  REQUIRE_FALSE(a.is_string);
  REQUIRE(static_cast<std::int64_t>(a.values.size()) == a.numel());
  for (size_t i = 0; i < a.values.size(); ++i)
    if (a.values[i] != static_cast<float>(i) * 0.25f) {
      FAIL_CHECK("element " << i << " is " << a.values[i]);
      break;
    }
}

}  // namespace

TEST_CASE("every float .npy numpy writes loads with the right values, in the library and the CLI") {
  int files = 0;
  for (const char* tag : {"f2", "f4", "f8", "g"})
    for (const char* order : {"le", "be"})
      for (int rank = 1; rank <= 5; ++rank)
        for (const char* layout : {"c", "f", "view"}) {
          const std::string name = std::string(tag) + "_" + order + "_" + std::to_string(rank) + "d_" + layout + ".npy";
          const fs::path p = zoo() / name;
          REQUIRE(fs::exists(p));
          check_values(parse_npy(slurp(p), name), name);
          ++files;
          // The CLI imports the same file (1-D as one query row).
          RunResult r = run_cli("inspect '" + p.string() + "'");
          CHECK_MESSAGE(r.code == 0, name << ": " << r.out);
        }
  CHECK(files == 120);
}

TEST_CASE("np.savez and np.savez_compressed archives load") {
  for (const char* tag : {"f2", "f4", "f8", "g"})
    for (const char* kind : {"savez", "savez_compressed"}) {
      const std::string name = std::string(tag) + "_" + kind + ".npz";
      const auto members = parse_npz(slurp(zoo() / name), name);
      bool found = false;
      for (const auto& m : members)
        if (m.name == "attention") {
          found = true;
          CHECK(m.array.shape == std::vector<std::int64_t>{2, 3, 4});
          check_values(m.array, name);
        }
      CHECK(found);
      RunResult r = run_cli("inspect '" + (zoo() / name).string() + "'");
      CHECK_MESSAGE(r.code == 0, name << ": " << r.out);
    }
}

TEST_CASE("unsupported dtypes get a message that says what to do") {
  const std::pair<const char*, const char*> cases[] = {
      {"int64", "astype(np.float32)"},         {"uint8", "astype(np.float32)"},
      {"bool", "save the attention weights as float32"}, {"complex", "np.abs(x)"},
      {"bytes", "dtype=str"},                  {"object", "attnviz never unpickles; save a float array"},
      {"datetime", "not attention weights"},
  };
  for (const auto& [name, advice] : cases) {
    const fs::path p = zoo() / (std::string("bad_") + name + ".npy");
    INFO(name);
    CHECK_THROWS_WITH_AS(parse_npy(slurp(p), p.string()), doctest::Contains(advice), InputError);
    RunResult r = run_cli("inspect '" + p.string() + "'");
    CHECK(r.code == 2);
    CHECK(r.out.find(advice) != std::string::npos);
  }
  // numpy's own archive with an object member: the float member loads, the other is named.
  RunResult r = run_cli("inspect '" + (zoo() / "mixed_object.npz").string() + "'");
  CHECK_MESSAGE(r.code == 0, r.out);
  CHECK(r.out.find("never unpickles") != std::string::npos);
}
