// libFuzzer target: the parallel-corpus readers (TSV with gold column, `source ||| target`).
#include "fuzz_common.hpp"
#include "fuzz_file.hpp"

#include <attnviz/data/corpus.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = attnviz::fuzz::to_temp_file(data, size, ".tsv");
  return attnviz::fuzz::run(data, size, [&](const std::string&) {
    try {
      (void)attnviz::read_corpus(path);
    } catch (const attnviz::InputError&) {
    }
    (void)attnviz::read_bitext(path);
  });
}
