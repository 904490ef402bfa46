// libFuzzer target: the GGUF reader (header, every metadata value, tensor infos and data ranges),
// then everything a caller does with an accepted file: every value read as every type, tensors
// dequantized, the inspect text, and the tokenizer built from the file's vocabulary.
#include "fuzz_common.hpp"

#include <attnviz/io/gguf.hpp>
#include <attnviz/text/lm_tokenizer.hpp>

namespace {

template <class F>
void tolerate(F&& f) {  // a wrong-type or out-of-range request is an InputError, never a crash
  try {
    f();
  } catch (const attnviz::InputError&) {
  }
}

void exercise(const attnviz::GgufFile& f) {
  for (const auto& k : f.keys()) {
    (void)f.describe_value(k, 40);
    tolerate([&] { (void)f.get_string(k); });
    tolerate([&] { (void)f.get_int(k); });
    tolerate([&] { (void)f.get_float(k); });
    tolerate([&] { (void)f.get_bool(k, false); });
    tolerate([&] { (void)f.get_string_array(k); });
    tolerate([&] { (void)f.get_float_array(k); });
    tolerate([&] { (void)f.get_int_array(k); });
  }
  for (const auto& t : f.tensors()) {
    const auto v = f.dequantize(t);
    if (v.size() != t.numel()) __builtin_trap();
    tolerate([&] { (void)f.matrix(t.name, -1, -1); });
  }
  (void)attnviz::describe_gguf(f);
  // The tokenizer, when the file carries one: encode and decode a few strings.
  tolerate([&] {
    attnviz::LmVocab v;
    v.model = f.get_string("tokenizer.ggml.model");
    v.tokens = f.get_string_array("tokenizer.ggml.tokens");
    if (f.has("tokenizer.ggml.scores")) v.scores = f.get_float_array("tokenizer.ggml.scores");
    if (f.has("tokenizer.ggml.token_type"))
      for (auto t : f.get_int_array("tokenizer.ggml.token_type")) v.types.push_back(static_cast<std::int32_t>(t));
    if (f.has("tokenizer.ggml.merges")) v.merges = f.get_string_array("tokenizer.ggml.merges");
    v.bos = static_cast<int>(f.get_int("tokenizer.ggml.bos_token_id", -1));
    v.eos = static_cast<int>(f.get_int("tokenizer.ggml.eos_token_id", -1));
    v.unk = static_cast<int>(f.get_int("tokenizer.ggml.unknown_token_id", -1));
    const attnviz::LmTokenizer tok(std::move(v));
    for (const char* s : {"Once upon a time", " two  spaces\n", "caf\xC3\xA9 \xF0\x9F\x98\x80 \xFF"}) {
      const auto ids = tok.encode(s, true);
      (void)tok.decode(ids);
      for (int id : ids) (void)tok.display(id);
    }
    for (int id = 0; id < tok.size() && id < 64; ++id) (void)tok.display(id);
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return attnviz::fuzz::run(data, size, [](const std::string& b) { exercise(attnviz::GgufFile::parse(b, "fuzz.gguf")); });
}
