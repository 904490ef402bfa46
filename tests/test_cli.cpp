// CLI skeleton: --help/--version, every subcommand's --help shows an example, exit codes 0/1/2.
#include <doctest/doctest.h>

#include "test_util.hpp"

#include <attnviz/models/mnist.hpp>
#include <attnviz/models/model_file.hpp>

#include <algorithm>

using namespace attnviz::test;

namespace {
// run_cli with one environment assignment ("NAME=value") before the program.
RunResult run_cli_env(const std::string& assignment, const std::string& args) {
  return run_shell("env '" + assignment + "' '" + ATTNVIZ_EXE + "' " + args + " 2>&1");
}
}  // namespace

TEST_CASE("--version names the program and its libraries") {
  auto r = run_cli("--version");
  CHECK(r.code == 0);
  CHECK(r.out.find("attnviz ") != std::string::npos);
  CHECK(r.out.find("cairo") != std::string::npos);
}

TEST_CASE("top-level --help lists every subcommand") {
  auto r = run_cli("--help");
  CHECK(r.code == 0);
  for (const char* s : {"demo", "train", "eval", "record", "render", "align", "inspect", "bench"})
    CHECK_MESSAGE(r.out.find(s) != std::string::npos, s);
}

TEST_CASE("only the named command's options are built, and global options may come before it") {
  // main.cpp builds one top-level command's tree when argv names it after the global options.
  auto r = run_cli("--threads 1 --quiet --max-mib=64 inspect --help");
  CHECK(r.code == 0);
  CHECK(r.out.find("attnviz inspect") != std::string::npos);
  r = run_cli("--data render inspect " + sample("alignment_6x7.safetensors").string());  // "render" is --data's value
  CHECK(r.code == 0);
  CHECK(r.out.find("alignment") != std::string::npos);
  // An unknown word before the command, or none: the full CLI, with its own messages.
  r = run_cli("--threads 1 --help");
  CHECK(r.code == 0);
  for (const char* s : {"demo", "render", "generate", "corpus"}) CHECK_MESSAGE(r.out.find(s) != std::string::npos, s);
  r = run_cli("--bogus render heatmap x.npy");
  CHECK(r.code == 1);
  CHECK(r.out.find("--bogus") != std::string::npos);
  r = run_cli("rendr heatmap x.npy");
  CHECK(r.code == 1);
}

TEST_CASE("every subcommand's --help shows one worked example") {
  for (const char* s : {"demo", "train", "eval", "record", "render", "align", "inspect", "bench", "corpus"}) {
    auto r = run_cli(std::string(s) + " --help");
    CHECK_MESSAGE(r.code == 0, s);
    CHECK_MESSAGE(r.out.find("Example:") != std::string::npos, s);
    CHECK_MESSAGE(r.out.find("attnviz ") != std::string::npos, s);
  }
}

TEST_CASE("usage errors exit 1 with one line") {
  auto r = run_cli("inspect");  // missing INPUT
  CHECK(r.code == 1);
  CHECK(r.out.find("INPUT") != std::string::npos);
  r = run_cli("inspect --no-such-flag x");
  CHECK(r.code == 1);
  r = run_cli("");  // no subcommand
  CHECK(r.code == 1);
}

TEST_CASE("bad input exits 2 naming the file") {
  auto dir = temp_dir("bad_input");
  auto r = run_cli("inspect '" + (dir / "missing.safetensors").string() + "'");
  CHECK(r.code == 2);
  CHECK(r.out.find("missing.safetensors") != std::string::npos);
  spit(dir / "junk.bin", "this is not attention");
  r = run_cli("inspect '" + (dir / "junk.bin").string() + "'");
  CHECK(r.code == 2);
  CHECK(r.out.find("junk.bin") != std::string::npos);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
}

TEST_CASE("inspect prints shapes, tokens and top keys of the sample record") {
  auto r = run_cli("inspect '" + sample("alignment_6x7.safetensors").string() + "'");
  REQUIRE(r.code == 0);
  CHECK(r.out.find("decoder.layer0.cross  [2, 6, 7]") != std::string::npos);
  CHECK(r.out.find("tokens source (7): the cat did not eat the fish") != std::string::npos);
  CHECK(r.out.find("tokens target (6): die Katze aß den Fisch nicht") != std::string::npos);
  // Head 0 of the hand-made sample puts most weight on the gold link nicht -> not.
  CHECK(r.out.find("5:nicht ->  3:not 0.9") != std::string::npos);
  CHECK(r.out.find("mean entropy") != std::string::npos);
}

TEST_CASE("a data folder can be given by --data or ATTNVIZ_DATA") {
  // eval mnist reads the MNIST files from the data folder: the error names the folder it was given
  const fs::path dir = temp_dir("data_folder");
  const std::string model = (dir / "m.safetensors").string();
  attnviz::models::MnistConfig cfg;
  cfg.arch = "pool";
  attnviz::models::save_model(model, *attnviz::models::make_mnist_model(cfg, 1));
  auto r = run_cli("--data /nonexistent/by-option eval mnist --model '" + model + "'");
  CHECK(r.code == 2);
  CHECK_MESSAGE(r.out.find("/nonexistent/by-option/") != std::string::npos, r.out);
  r = run_cli_env("ATTNVIZ_DATA=/nonexistent/by-env", "eval mnist --model '" + model + "'");
  CHECK(r.code == 2);
  CHECK_MESSAGE(r.out.find("/nonexistent/by-env/") != std::string::npos, r.out);
  // the option wins over the variable
  r = run_cli_env("ATTNVIZ_DATA=/nonexistent/by-env", "--data /nonexistent/by-option eval mnist --model '" + model + "'");
  CHECK_MESSAGE(r.out.find("/nonexistent/by-option/") != std::string::npos, r.out);
}

TEST_CASE("train translate: --seed is the model's seed as in every train command; --init-seed its old spelling") {
  const fs::path dir = temp_dir("translate_seed");
  auto train = [&](const std::string& name, const std::string& seed_args) {
    const std::string out = (dir / name).string();
    auto r = run_cli("--threads 1 train translate --synthetic 40 --epochs 1 --batch 8 --embed 8 --hidden 8 " +
                     seed_args + " -o '" + out + "'");
    REQUIRE_MESSAGE(r.code == 0, r.out);
    return slurp(out);
  };
  const auto a = train("a.safetensors", "--seed 5");
  CHECK(a == train("b.safetensors", "--init-seed 5"));        // the old spelling is the same option
  CHECK(a != train("c.safetensors", "--seed 6"));             // the model's seed changes the weights
  CHECK(a != train("d.safetensors", "--seed 5 --data-seed 2"));  // the generator's seed changes the data
  // eval/record translate have no model seed: there --seed stays the old spelling of --data-seed
  CHECK(run_cli("eval translate --help").out.find("--data-seed") != std::string::npos);
}
