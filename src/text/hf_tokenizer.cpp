// Hugging Face tokenizer files: GPT-2 vocab.json + merges.txt, tokenizer.json BPE, BERT WordPiece.
#include <attnviz/error.hpp>
#include <attnviz/io/atomic_file.hpp>
#include <attnviz/text/hf_tokenizer.hpp>
#include <attnviz/text/tokenizer.hpp>

#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <utf8proc.h>

#include <fstream>
#include <sstream>
#include <type_traits>

namespace attnviz {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// j[key] as a string or bool, `fallback` when absent or null; an InputError naming the key when it
// holds another type (json::value would throw a type_error instead: found by fuzz_tokenizer).
template <class T>
T field_or(const json& j, const char* key, T fallback, const std::string& path) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) throw InputError(path, fmt::format("\"{}\" must be true or false", key));
  } else {
    if (!it->is_string()) throw InputError(path, fmt::format("\"{}\" must be a string", key));
  }
  return it->template get<T>();
}

constexpr std::uint64_t kMaxTokenizerFile = 64u << 20;   // the largest real ones are ~17 MB

std::string read_small(const fs::path& file) {
  std::error_code ec;
  const auto size = fs::file_size(file, ec);
  if (ec) throw InputError(file.string(), "cannot read file (" + ec.message() + ")");
  if (size > kMaxTokenizerFile)
    throw InputError(file.string(), fmt::format("{} bytes, more than a tokenizer file may have ({})", size, kMaxTokenizerFile));
  return read_file(file);
}

json parse_json(const fs::path& file) {
  try {
    return json::parse(read_small(file));
  } catch (const json::exception& e) {
    throw InputError(file.string(), fmt::format("not valid JSON ({})", e.what()));
  }
}

// {"token": id, ...} with ids exactly 0..n-1 (each once) -> tokens by id.
std::vector<std::string> vocab_by_id(const json& v, const std::string& path, const std::string& what) {
  if (!v.is_object() || v.empty()) throw InputError(path, what + " is not a non-empty {\"token\": id} object");
  std::vector<std::string> tokens(v.size());
  std::vector<char> seen(v.size(), 0);
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!it->is_number_integer()) throw InputError(path, fmt::format("{}: token '{}' has id {}, not an integer", what, it.key(), it->dump()));
    const long id = it->get<long>();
    if (id < 0 || id >= static_cast<long>(v.size()))
      throw InputError(path, fmt::format("{}: token '{}' has id {}, outside 0..{}", what, it.key(), id, v.size() - 1));
    if (seen[id]) throw InputError(path, fmt::format("{}: id {} is given to two tokens", what, id));
    seen[id] = 1;
    tokens[id] = it.key();
  }
  return tokens;
}

void build_tokenizer_check(const LmVocab& v, const std::string& path) {
  try {
    LmTokenizer t(v);   // the constructor checks merges, sizes and special ids
  } catch (const InputError& e) {
    throw InputError(path, e.reason());
  }
}

void apply_special(LmVocab& v, const SpecialIds& s) {
  if (s.bos >= 0) v.bos = s.bos;
  if (s.eos >= 0) v.eos = s.eos;
  if (s.unk >= 0) v.unk = s.unk;
  if (s.add_bos) v.add_bos = *s.add_bos;
}

// A merges entry: "a b" (older files) or ["a", "b"] (newer tokenizers releases).
std::string merge_line(const json& m, size_t i, const std::string& path) {
  if (m.is_string()) return m.get<std::string>();
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
    return m[0].get<std::string>() + " " + m[1].get<std::string>();
  throw InputError(path, fmt::format("model.merges[{}] is {}, not \"a b\" or [\"a\", \"b\"]", i, m.dump().substr(0, 60)));
}

// BERT's punctuation: ASCII non-alphanumerics (so "$" and "^" split too) and Unicode P* categories.
bool bert_punct(char32_t c) {
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return true;
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

bool bert_control(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF;
}

}  // namespace

LmVocab read_gpt2_vocab(const fs::path& vocab_json, const fs::path& merges_txt, const SpecialIds& special) {
  LmVocab v;
  v.model = "gpt2";
  v.add_bos = false;
  v.tokens = vocab_by_id(parse_json(vocab_json), vocab_json.string(), "vocab.json");
  std::istringstream in(read_small(merges_txt));
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (n == 1 && line.rfind("#version", 0) == 0)) continue;
    const size_t sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 == line.size() || line.find(' ', sp + 1) != std::string::npos)
      throw InputError(merges_txt.string(), fmt::format("line {}: \"{}\" is not two tokens separated by one space", n,
                                                        line.substr(0, 60)));
    v.merges.push_back(line);
  }
  apply_special(v, special);
  if (v.eos < 0) {
    for (size_t i = 0; i < v.tokens.size(); ++i)
      if (v.tokens[i] == "<|endoftext|>") v.eos = static_cast<int>(i);
  }
  build_tokenizer_check(v, vocab_json.string());
  return v;
}

LmVocab read_tokenizer_json_bpe(const fs::path& file, const SpecialIds& special) {
  const std::string path = file.string();
  const json j = parse_json(file);
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) throw InputError(path, "no \"model\" object");
  const json& m = j["model"];
  const std::string type = field_or(m, "type", std::string("BPE"), path);
  if (type != "BPE") throw InputError(path, fmt::format("model.type '{}' is not BPE (WordPiece folders use read_wordpiece)", type));
  if (!m.contains("vocab") || !m.contains("merges") || !m["merges"].is_array())
    throw InputError(path, "model needs \"vocab\" and a \"merges\" array");
  LmVocab v;
  v.tokens = vocab_by_id(m["vocab"], path, "model.vocab");
  const bool byte_fallback = field_or(m, "byte_fallback", false, path);
  v.model = byte_fallback ? "llama" : "gpt2";
  std::vector<std::string> merges;
  for (size_t i = 0; i < m["merges"].size(); ++i) merges.push_back(merge_line(m["merges"][i], i, path));
  // Added tokens: special ones are control tokens; ids past the model vocabulary extend it.
  std::vector<std::int32_t> types(v.tokens.size(), 1);
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const auto& a : j["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") || !a["content"].is_string())
        throw InputError(path, "added_tokens entries need an integer \"id\" and a \"content\" string");
      const long id = a["id"].get<long>();
      if (id < 0 || id > static_cast<long>(v.tokens.size()) + 4096)
        throw InputError(path, fmt::format("added token id {} is far outside the vocabulary of {}", id, v.tokens.size()));
      if (id >= static_cast<long>(v.tokens.size())) {
        v.tokens.resize(id + 1, "");
        types.resize(id + 1, 5);   // holes stay unused
      }
      v.tokens[id] = a["content"].get<std::string>();
      types[id] = field_or(a, "special", false, path) ? 3 : 4;
    }
  }
  if (byte_fallback) {
    // SentencePiece merges by the score of the merged token: minus the rank of its merge.
    std::unordered_map<std::string, int> id_of;
    for (size_t i = 0; i < v.tokens.size(); ++i) id_of.emplace(v.tokens[i], static_cast<int>(i));
    v.scores.assign(v.tokens.size(), -1e9f);
    for (size_t r = 0; r < merges.size(); ++r) {
      const size_t sp = merges[r].find(' ');
      if (sp == std::string::npos) throw InputError(path, fmt::format("model.merges[{}] is not two tokens", r));
      auto it = id_of.find(merges[r].substr(0, sp) + merges[r].substr(sp + 1));
      if (it != id_of.end() && v.scores[it->second] == -1e9f) v.scores[it->second] = -static_cast<float>(r);
    }
    for (size_t i = 0; i < v.tokens.size(); ++i) {
      const std::string& t = v.tokens[i];
      if (t.size() == 6 && t.rfind("<0x", 0) == 0 && t[5] == '>') types[i] = 6;
    }
    if (m.contains("unk_token") && m["unk_token"].is_string()) {
      auto it = id_of.find(m["unk_token"].get<std::string>());
      if (it != id_of.end()) {
        v.unk = it->second;
        types[it->second] = 2;
      }
    }
    v.merges = std::move(merges);
  } else {
    v.merges = std::move(merges);
    v.add_bos = false;
  }
  v.types = std::move(types);
  apply_special(v, special);
  build_tokenizer_check(v, path);
  return v;
}

// ---- WordPiece -------------------------------------------------------------------------------

WordPieceTokenizer::WordPieceTokenizer(std::vector<std::string> vocab, WordPieceOptions opt)
    : vocab_(std::move(vocab)), opt_(std::move(opt)) {
  for (size_t i = 0; i < vocab_.size(); ++i) ids_.emplace(vocab_[i], static_cast<int>(i));
  auto need = [&](const std::string& t) {
    auto it = ids_.find(t);
    if (it == ids_.end()) throw InputError("", fmt::format("WordPiece vocabulary has no '{}' token", t));
    return it->second;
  };
  cls_ = need(opt_.cls);
  sep_ = need(opt_.sep);
  unk_ = need(opt_.unk);
}

std::vector<std::string> WordPieceTokenizer::basic_tokens(const std::string& text) const {
  std::vector<std::string> out;
  auto on_word = [&](std::string&& word) {
    if (opt_.strip_accents) word = normalize_text(word, Normalization::None, true);
    // Punctuation splits after the accent strip, as BERT's _run_split_on_punc.
    std::string piece;
    size_t p = 0;
    char32_t c;
    while (p < word.size()) {
      const size_t s = p;
      utf8_next(word, p, c);
      if (bert_punct(c)) {
        if (!piece.empty()) out.push_back(std::move(piece)), piece.clear();
        out.push_back(word.substr(s, p - s));
      } else {
        piece.append(word, s, p - s);
      }
    }
    if (!piece.empty()) out.push_back(std::move(piece));
  };
  // NUL, U+FFFD (and so malformed bytes) and control characters are dropped, as by BERT
  split_at_spaces(
      text, opt_.lowercase, [](char32_t c) { return c == 0 || c == 0xFFFD || bert_control(c); },
      [&](char32_t c) { return opt_.split_cjk && is_cjk_ideograph(c); }, on_word,
      [&](std::string&& one) { out.push_back(std::move(one)); });
  return out;
}

std::vector<int> WordPieceTokenizer::word_pieces(const std::string& word) const {
  if (static_cast<int>(utf8_length(word)) > opt_.max_chars) return {unk_};
  std::vector<int> out;
  size_t start = 0;
  while (start < word.size()) {
    // Longest vocabulary entry starting at `start` (ends on character boundaries).
    std::vector<size_t> ends;
    for (size_t p = start; p < word.size();) {
      char32_t c;
      utf8_next(word, p, c);
      ends.push_back(p);
    }
    int found = -1;
    size_t found_end = 0;
    for (auto it = ends.rbegin(); it != ends.rend(); ++it) {
      std::string sub = word.substr(start, *it - start);
      if (start > 0) sub = opt_.prefix + sub;
      auto f = ids_.find(sub);
      if (f != ids_.end()) {
        found = f->second;
        found_end = *it;
        break;
      }
    }
    if (found < 0) return {unk_};
    out.push_back(found);
    start = found_end;
  }
  return out;
}

Encoding WordPieceTokenizer::encode(const std::string& text, const std::string* pair) const {
  Encoding e;
  auto push = [&](int id, int type) {
    e.ids.push_back(id);
    e.type_ids.push_back(type);
    e.tokens.push_back(vocab_[id]);
  };
  push(cls_, 0);
  for (const auto& w : basic_tokens(text))
    for (int id : word_pieces(w)) push(id, 0);
  push(sep_, 0);
  if (pair) {
    for (const auto& w : basic_tokens(*pair))
      for (int id : word_pieces(w)) push(id, 1);
    push(sep_, 1);
  }
  return e;
}

WordPieceTokenizer read_wordpiece(const fs::path& dir) {
  WordPieceOptions opt;
  std::vector<std::string> vocab;
  std::string source;
  const fs::path cfg = dir / "tokenizer_config.json", tj = dir / "tokenizer.json", vt = dir / "vocab.txt";
  bool strip_given = false;
  if (fs::exists(cfg)) {
    const json c = parse_json(cfg);
    if (!c.is_object()) throw InputError(cfg.string(), "not a JSON object");
    auto flag = [&](const char* key, bool& dst) {
      if (!c.contains(key) || c[key].is_null()) return false;
      if (!c[key].is_boolean()) throw InputError(cfg.string(), fmt::format("\"{}\" is {}, not true/false", key, c[key].dump()));
      dst = c[key].get<bool>();
      return true;
    };
    flag("do_lower_case", opt.lowercase);
    strip_given = flag("strip_accents", opt.strip_accents);
    flag("tokenize_chinese_chars", opt.split_cjk);
    for (auto [key, dst] : {std::pair<const char*, std::string*>{"cls_token", &opt.cls}, {"sep_token", &opt.sep}, {"unk_token", &opt.unk}})
      if (c.contains(key) && c[key].is_string()) *dst = c[key].get<std::string>();
  }
  if (!strip_given) opt.strip_accents = opt.lowercase;
  if (fs::exists(vt)) {
    source = vt.string();
    std::istringstream in(read_small(vt));
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      vocab.push_back(line);
    }
    if (vocab.empty()) throw InputError(source, "empty vocabulary");
  } else if (fs::exists(tj)) {
    source = tj.string();
    const json j = parse_json(tj);
    if (!j.is_object() || !j.contains("model") || !j["model"].is_object() || field_or(j["model"], "type", std::string(), source) != "WordPiece")
      throw InputError(source, "not a WordPiece tokenizer.json (model.type must be \"WordPiece\")");
    const json& m = j["model"];
    // (operator[] of a const json on a missing key is undefined behaviour: found by fuzz_tokenizer)
    if (!m.contains("vocab")) throw InputError(source, "model needs a \"vocab\" object");
    vocab = vocab_by_id(m["vocab"], source, "model.vocab");
    if (m.contains("continuing_subword_prefix") && m["continuing_subword_prefix"].is_string())
      opt.prefix = m["continuing_subword_prefix"].get<std::string>();
    if (m.contains("max_input_chars_per_word") && m["max_input_chars_per_word"].is_number_integer())
      opt.max_chars = m["max_input_chars_per_word"].get<int>();
    if (!fs::exists(cfg) && j.contains("normalizer") && j["normalizer"].is_object()) {
      const json& n = j["normalizer"];
      if (n.contains("lowercase") && n["lowercase"].is_boolean()) opt.lowercase = n["lowercase"].get<bool>();
      opt.strip_accents = n.contains("strip_accents") && n["strip_accents"].is_boolean() ? n["strip_accents"].get<bool>() : opt.lowercase;
      if (n.contains("handle_chinese_chars") && n["handle_chinese_chars"].is_boolean()) opt.split_cjk = n["handle_chinese_chars"].get<bool>();
    }
  } else {
    throw InputError(dir.string(), "no vocab.txt or tokenizer.json (a WordPiece vocabulary)");
  }
  try {
    return WordPieceTokenizer(std::move(vocab), opt);
  } catch (const InputError& e) {
    throw InputError(source, e.reason());
  }
}

}  // namespace attnviz
