// libFuzzer target: CSV/TSV attention import (quoting, delimiter choice, header/index detection,
// numbers, the content sniffing used for files without a .csv/.tsv extension).
#include "fuzz_common.hpp"

#include <attnviz/record/import.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return attnviz::fuzz::run(data, size, [](const std::string& b) {
    (void)attnviz::looks_like_delimited(b);
    attnviz::ImportedArrays a = attnviz::parse_attention_csv(b, "fuzz.csv");
    attnviz::fuzz::exercise({attnviz::record_from_arrays(a, "fuzz.csv", {})});
  });
}
