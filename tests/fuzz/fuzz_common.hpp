// Shared by the libFuzzer targets: run a parser on the input, accept only InputError/UsageError,
// and push whatever it returns through the code that consumes records downstream.
#pragma once
#include <attnviz/error.hpp>
#include <attnviz/record/nonfinite.hpp>
#include <attnviz/record/record.hpp>
#include <attnviz/io/safetensors.hpp>
#include <attnviz/record/stats.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace attnviz::fuzz {

// Everything a record goes through after import: validation, NaN/Inf census, entropy, top keys of
// a few rows, and a save/parse round trip (which must succeed for a record that validated).
inline void exercise(const std::vector<AttentionRecord>& records) {
  for (const auto& r : records) {
    r.validate("fuzz");
    for (const auto& t : r.tensors) {
      (void)find_nonfinite(t, 3);
      (void)head_entropy(t);
      (void)t.mean_heads();
    }
  }
  const std::string bytes = serialize_safetensors(records_to_safetensors(records));
  auto again = records_from_safetensors(parse_safetensors(bytes, "roundtrip"), "roundtrip");
  if (again.size() != records.size()) __builtin_trap();
}

template <class F>
int run(const std::uint8_t* data, std::size_t size, F&& parse) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    parse(bytes);
  } catch (const InputError&) {
  } catch (const UsageError&) {
  }
  return 0;
}

}  // namespace attnviz::fuzz
