// Tokenizer files of Hugging Face model directories: GPT-2's vocab.json + merges.txt, tokenizer.json
// (BPE, with byte fallback for the Llama case, or byte-level), and BERT's WordPiece (vocab.txt or a
// tokenizer.json WordPiece model) with BERT's basic tokenization. BPE vocabularies become an LmVocab
// for LmTokenizer, so there is one BPE implementation.
#pragma once
#include <attnviz/text/lm_tokenizer.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace attnviz {

// Special ids a directory's config.json / tokenizer_config.json give (-1 = not given).
struct SpecialIds {
  int bos = -1, eos = -1, unk = -1;
  std::optional<bool> add_bos;
};

// GPT-2 byte-level BPE from vocab.json ({"token": id}) and merges.txt ("#version" line, then "a b").
// Throws InputError naming the file (ids not 0..n-1, a merge that is not two tokens, ...).
LmVocab read_gpt2_vocab(const std::filesystem::path& vocab_json, const std::filesystem::path& merges_txt,
                        const SpecialIds& special);
// tokenizer.json with a BPE model: byte_fallback -> "llama" (SentencePiece-style pieces and byte
// fallback; listed pairs merge by rank), ByteLevel pre-tokenizer -> "gpt2". Added tokens that
// are special become control tokens; their ids may extend the model's vocabulary.
LmVocab read_tokenizer_json_bpe(const std::filesystem::path& tokenizer_json, const SpecialIds& special);

// ---- WordPiece -------------------------------------------------------------------------------

struct WordPieceOptions {
  bool lowercase = true;        // tokenizer_config.json do_lower_case
  bool strip_accents = true;    // strip_accents (null: follows lowercase, as BERT's tokenizer)
  bool split_cjk = true;        // tokenize_chinese_chars
  std::string prefix = "##";    // continuing_subword_prefix
  int max_chars = 100;          // max_input_chars_per_word: longer words become [UNK]
  std::string cls = "[CLS]", sep = "[SEP]", unk = "[UNK]";
};

struct Encoding {
  std::vector<int> ids;
  std::vector<int> type_ids;        // 0 for [CLS] text [SEP], 1 for the pair's text [SEP]
  std::vector<std::string> tokens;  // vocabulary strings ("##" pieces as they are)
};

class WordPieceTokenizer {
 public:
  // vocab: token per id. Throws InputError("", ...) when [CLS], [SEP] or [UNK] is missing.
  WordPieceTokenizer(std::vector<std::string> vocab, WordPieceOptions opt);
  // BERT's basic tokenization: control characters dropped, whitespace split, CJK ideographs and
  // punctuation (ASCII non-alphanumerics and Unicode P*) split off, lowercase and accent strip.
  std::vector<std::string> basic_tokens(const std::string& text) const;
  // Greedy longest-match-first pieces of one word ("unaffable" -> un ##aff ##able); [UNK] when a
  // part has no match.
  std::vector<int> word_pieces(const std::string& word) const;
  // [CLS] text [SEP] (pair [SEP]).
  Encoding encode(const std::string& text, const std::string* pair = nullptr) const;
  int size() const { return static_cast<int>(vocab_.size()); }
  const std::string& token(int id) const { return vocab_.at(id); }
  const WordPieceOptions& options() const { return opt_; }

 private:
  std::vector<std::string> vocab_;
  std::unordered_map<std::string, int> ids_;
  WordPieceOptions opt_;
  int cls_ = -1, sep_ = -1, unk_ = -1;
};

// vocab.txt (one token per line) or a tokenizer.json WordPiece model, with options from
// tokenizer_config.json (do_lower_case, strip_accents, tokenize_chinese_chars) when the folder has
// one. Throws InputError naming the file.
WordPieceTokenizer read_wordpiece(const std::filesystem::path& dir);

}  // namespace attnviz
