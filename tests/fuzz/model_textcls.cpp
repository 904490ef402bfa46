// fuzz_model helpers for the text classifiers (bigru, transformer): load, and tiny seed files.
#include "model_loaders.hpp"

#include <attnviz/models/textcls.hpp>
#include <attnviz/text/tokenizer.hpp>

namespace attnviz::fuzz {
using namespace attnviz::models;

void load_textcls(const std::string& path) { (void)load_textcls_model(path); }

void save_textcls_seeds(const std::string& dir) {
  Vocabulary v(std::vector<std::string>{"<pad>", "<unk>", "<bos>", "<eos>", "a", "b"});
  for (const char* arch : {"bigru", "transformer"}) {
    TextClsConfig c;
    c.arch = arch;
    c.embed = c.hidden = c.attn_hidden = 4;
    c.dim = 4;
    c.layers = 1;
    c.heads = 2;
    c.mlp = 4;
    c.max_len = 8;
    save_textcls_model(dir + "/textcls_" + arch + ".safetensors", *make_textcls_model(c, v, {"x", "y"}, 1));
  }
}
}  // namespace attnviz::fuzz
