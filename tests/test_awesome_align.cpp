// awesome-align's own example predictions (examples/{enfr,roen,zhen,jaen}.awesome-align.out, 0-based)
// scored against its gold (examples/*.gold, 1-based, possible links written `ipj`) with
// `align --score P --gold G --gold-one-indexed` give the AER that awesome-align publishes for them
// (issue 14 target: fr-en 4.1, ro-en 20.7, zh-en 13.4, ja-en 37.4, printed with one decimal). zh-en
// reaches 13.4 only with --gold-all-sure (its gold has possible links; scored as sure/possible it is
// 13.3); ro-en and ja-en gold have no possible links, and fr-en needs them kept (as sure: 50.5).
// The files are other people's data and are not in this repository: scripts/fetch-awesome-align-
// examples downloads them; ATTNVIZ_AWESOME_ALIGN names that folder. Without it (or with a file
// missing) the test exits 77, which CTest reports as skipped.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "test_util.hpp"

using namespace attnviz::test;

namespace {

struct Pair {
  const char* name;       // file stem in awesome-align's examples/
  const char* published;  // AER in percent, as awesome-align prints it (one decimal)
  bool all_sure;          // the published number counts possible gold links as sure
};
constexpr Pair kPairs[] = {{"enfr", "4.1", false}, {"roen", "20.7", false}, {"zhen", "13.4", true}, {"jaen", "37.4", false}};

fs::path examples_or_skip() {
  const char* env = std::getenv("ATTNVIZ_AWESOME_ALIGN");
  if (!env || !*env) {
    std::cerr << "SKIPPED: set ATTNVIZ_AWESOME_ALIGN to a folder with awesome-align's examples "
                 "(scripts/fetch-awesome-align-examples DIR downloads them)\n";
    std::exit(77);
  }
  const fs::path dir = env;
  for (const Pair& p : kPairs)
    for (const char* ext : {".awesome-align.out", ".gold"})
      if (!fs::exists(dir / (std::string(p.name) + ext))) {
        std::cerr << "SKIPPED: " << (dir / (std::string(p.name) + ext)) << " is missing\n";
        std::exit(77);
      }
  return dir;
}

// A second, independent count straight from the files, so that the test checks attnviz's counts
// and not only a rounded AER. Per line: the set of links (duplicates count once), sure = written
// with '-', possible = every link (sure or 'p'); `shift` turns 1-based indices into 0-based.
struct Line {
  std::set<std::pair<int, int>> sure, possible;
};
std::vector<Line> read_links(const fs::path& path, int shift, bool all_sure = false) {
  std::vector<Line> lines;
  std::istringstream in(slurp(path));
  std::string text;
  while (std::getline(in, text)) {
    Line l;
    std::istringstream words(text);
    std::string w;
    while (words >> w) {
      const auto sep = w.find_first_of("-p?");
      REQUIRE(sep != std::string::npos);
      const std::pair<int, int> link{std::stoi(w.substr(0, sep)) - shift, std::stoi(w.substr(sep + 1)) - shift};
      l.possible.insert(link);
      if (w[sep] == '-' || all_sure) l.sure.insert(link);
    }
    lines.push_back(std::move(l));
  }
  return lines;
}

std::string one_decimal_percent(double aer) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", aer * 100.0);
  return buf;
}

}  // namespace

TEST_CASE("awesome-align's predictions against its gold, --gold-one-indexed: the published AER") {
  const fs::path dir = examples_or_skip();
  for (const Pair& p : kPairs) {
    CAPTURE(p.name);
    const fs::path pred = dir / (std::string(p.name) + ".awesome-align.out");
    const fs::path gold = dir / (std::string(p.name) + ".gold");
    const std::string args = "align --score '" + pred.string() + "' --gold '" + gold.string() + "' --gold-one-indexed";
    const auto r = run_cli(args + (p.all_sure ? " --gold-all-sure" : "") + " --json");
    REQUIRE(r.code == 0);
    const auto j = nlohmann::json::parse(r.out);

    const auto hyp = read_links(pred, 0);
    const auto ref = read_links(gold, 1, p.all_sure);
    REQUIRE(hyp.size() == ref.size());
    long a = 0, s = 0, as = 0, ap = 0;
    for (size_t i = 0; i < hyp.size(); ++i) {
      a += static_cast<long>(hyp[i].possible.size());
      s += static_cast<long>(ref[i].sure.size());
      for (const auto& link : hyp[i].possible) {
        as += ref[i].sure.count(link);
        ap += ref[i].possible.count(link);
      }
    }
    CHECK(j["what"] == std::to_string(hyp.size()) + " sentence(s)");
    CHECK(j["predicted"] == a);
    CHECK(j["sure"] == s);
    CHECK(j["a_and_s"] == as);
    CHECK(j["a_and_p"] == ap);
    CHECK(one_decimal_percent(j["aer"].get<double>()) == p.published);
    if (p.all_sure) {  // the other convention does not give the published number
      const auto other = nlohmann::json::parse(run_cli(args + " --json").out);
      CHECK(one_decimal_percent(other["aer"].get<double>()) != p.published);
    }
  }
}

TEST_CASE("the same files without --gold-one-indexed: a warning naming the flag, and another AER") {
  const fs::path dir = examples_or_skip();
  for (const Pair& p : kPairs) {
    CAPTURE(p.name);
    const fs::path pred = dir / (std::string(p.name) + ".awesome-align.out");
    const fs::path gold = dir / (std::string(p.name) + ".gold");
    const auto r = run_cli("align --score '" + pred.string() + "' --gold '" + gold.string() + "'");
    REQUIRE(r.code == 0);
    CHECK(r.out.find("pass --gold-one-indexed") != std::string::npos);
    const auto at = r.out.find("AER ");
    REQUIRE(at != std::string::npos);
    CHECK(one_decimal_percent(std::stod(r.out.substr(at + 4))) != p.published);
  }
}
