// The README's C++ example: install attnviz to a temporary prefix, build examples/api against it
// with find_package(attnviz), run it, and check the record it writes.
#include <doctest/doctest.h>

#include <attnviz/record/record.hpp>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "test_util.hpp"

using namespace attnviz;
namespace fs = std::filesystem;

namespace {
int sh(const std::string& cmd) {
  int status = std::system((cmd + " > /dev/null 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
}  // namespace

TEST_CASE("the README example builds against the installed package and writes a record") {
  const fs::path build = fs::path(ATTNVIZ_EXE).parent_path();
  const fs::path dir = test::temp_dir("api_example");
  const fs::path prefix = dir / "prefix", ex = dir / "build", out = dir / "attention.safetensors";
  REQUIRE(sh("cmake --install '" + build.string() + "' --prefix '" + prefix.string() + "'") == 0);
  CHECK(fs::exists(prefix / "include/attnviz/engine/attention.hpp"));
  CHECK(fs::exists(prefix / "include/attnviz/record/record.hpp"));
  // Bench and test internals are not part of the installed API.
  CHECK_FALSE(fs::exists(prefix / "include/attnviz/engine/bench.hpp"));
  CHECK_FALSE(fs::exists(prefix / "include/attnviz/engine/gradcheck.hpp"));
  REQUIRE(sh("cmake -S '" + (test::source_dir() / "examples/api").string() + "' -B '" + ex.string() +
             "' -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH='" + prefix.string() + "'") == 0);
  REQUIRE(sh("cmake --build '" + ex.string() + "'") == 0);
  REQUIRE(sh("'" + (ex / "attention_example").string() + "' '" + out.string() + "'") == 0);

  AttentionRecord rec = load_record(out);
  REQUIRE(rec.tensors.size() == 1);
  const AttentionTensor& t = rec.tensors[0];
  CHECK(t.name == "encoder.layer0.self");
  CHECK(t.heads == 4);
  CHECK(t.queries == 5);
  CHECK(t.keys == 5);
  CHECK(rec.tokens["tokens"].size() == 5);
  for (int h = 0; h < 4; ++h)
    for (int i = 0; i < 5; ++i) {
      double sum = 0;
      for (int j = 0; j < 5; ++j) sum += t.at(h, i, j);
      CHECK(sum == doctest::Approx(1.0).epsilon(1e-5));
      for (int j = i + 1; j < 5; ++j) CHECK(t.at(h, i, j) == 0.f);   // causal
    }
}
