// libFuzzer target: the tokenizer files of Hugging Face directories. The first input byte picks the
// file (tokenizer.json BPE, vocab.json, merges.txt, vocab.txt, tokenizer.json WordPiece,
// tokenizer_config.json); the rest is its content, next to small valid companions. An accepted
// tokenizer then encodes and decodes a few strings (ASCII, accents, CJK, invalid UTF-8).
#include "fuzz_common.hpp"

#include <attnviz/text/hf_tokenizer.hpp>
#include <attnviz/text/lm_tokenizer.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

const fs::path& dir() {
  static const fs::path d = [] {
    const char* t = std::getenv("TMPDIR");
    fs::path p = fs::path(t && *t ? t : "/tmp") / ("attnviz_fuzz_tok_" + std::to_string(::getpid()));
    fs::create_directories(p);
    std::atexit([] { std::error_code ec; fs::remove_all(dir(), ec); });
    return p;
  }();
  return d;
}

void put(const std::string& name, const std::string& bytes) {
  std::ofstream(dir() / name, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

const char* kTexts[] = {"Hello the cat, unaffable!", " café 日本 it's 42", "a\xC3(b\xFF", "", "   ", "##"};

void use_lm(attnviz::LmVocab v) {
  const attnviz::LmTokenizer t(std::move(v));
  for (const char* s : kTexts) {
    const auto ids = t.encode(s, true);
    (void)t.decode(ids);
    for (int id : ids) (void)t.display(id);
  }
}

void use_wordpiece(const attnviz::WordPieceTokenizer& t) {
  const std::string pair = kTexts[1];
  for (const char* s : kTexts) {
    const auto e = t.encode(s, &pair);
    if (e.ids.size() != e.tokens.size() || e.ids.size() != e.type_ids.size()) __builtin_trap();
  }
}

const char* kVocab = R"({"a": 0, "b": 1, "ab": 2, "\u0120": 3, "\u0120a": 4, "<|endoftext|>": 5})";
const char* kMerges = "#version: 0.2\na b\n\xC4\xA0 a\n";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const int kind = data[0] % 6;
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  return attnviz::fuzz::run(data, size, [&](const std::string&) {
    for (const char* f : {"tokenizer.json", "vocab.json", "merges.txt", "vocab.txt", "tokenizer_config.json"}) {
      std::error_code ec;
      fs::remove(dir() / f, ec);
    }
    switch (kind) {
      case 0:
        put("tokenizer.json", body);
        use_lm(attnviz::read_tokenizer_json_bpe(dir() / "tokenizer.json", {}));
        break;
      case 1:
        put("vocab.json", body);
        put("merges.txt", kMerges);
        use_lm(attnviz::read_gpt2_vocab(dir() / "vocab.json", dir() / "merges.txt", {}));
        break;
      case 2:
        put("vocab.json", kVocab);
        put("merges.txt", body);
        use_lm(attnviz::read_gpt2_vocab(dir() / "vocab.json", dir() / "merges.txt", {}));
        break;
      case 3:
        put("vocab.txt", body);
        use_wordpiece(attnviz::read_wordpiece(dir()));
        break;
      case 4:
        put("tokenizer.json", body);
        use_wordpiece(attnviz::read_wordpiece(dir()));
        break;
      default:
        put("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nun\n##aff\n##able\nhello\n");
        put("tokenizer_config.json", body);
        use_wordpiece(attnviz::read_wordpiece(dir()));
        break;
    }
  });
}
