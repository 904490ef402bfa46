// fuzz_model helpers for the translators (rnn, transformer): load, and tiny seed files.
#include "model_loaders.hpp"

#include <attnviz/models/translator.hpp>
#include <attnviz/text/tokenizer.hpp>

namespace attnviz::fuzz {
using namespace attnviz::models;

void load_translator(const std::string& path) { (void)attnviz::models::load_translator(path); }

void save_translator_seeds(const std::string& dir) {
  Vocabulary v(std::vector<std::string>{"<pad>", "<unk>", "<bos>", "<eos>", "a", "b"});
  for (const char* arch : {"rnn", "transformer"}) {
    TranslatorConfig c;
    c.arch = arch;
    c.embed = c.hidden = 4;
    c.dim = 4;
    c.heads = 2;
    c.layers = 1;
    c.ff = 4;
    c.max_len = 8;
    save_translator(dir + "/translator_" + arch + ".safetensors", *make_translator(c, v, v));
  }
}
}  // namespace attnviz::fuzz
