// libFuzzer target: JSON attention import (both forms, NaN/Infinity literals, nesting limits).
#include "fuzz_common.hpp"

#include <attnviz/record/import.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return attnviz::fuzz::run(data, size, [](const std::string& b) {
    attnviz::ImportedArrays a = attnviz::parse_attention_json(b, "fuzz.json");
    attnviz::fuzz::exercise({attnviz::record_from_arrays(a, "fuzz.json", {})});
  });
}
