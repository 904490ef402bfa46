// Tokenizers of pretrained language models, built from the vocabulary a GGUF file carries:
// SentencePiece-style BPE with byte fallback (tokenizer.ggml.model "llama") and GPT-2 byte-level BPE
// ("gpt2"). This is the text layer: it takes plain vectors, the model layer passes the GGUF arrays in.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace attnviz {

struct LmVocab {
  std::string model;                 // "llama" (SentencePiece BPE, byte fallback) | "gpt2" (byte-level BPE)
  std::vector<std::string> tokens;   // llama: pieces with '▁' for space; gpt2: byte-level unicode ("Ġthe")
  std::vector<float> scores;         // llama: merge priority (higher merges first); may be empty for gpt2
  std::vector<std::int32_t> types;   // 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte; may be empty
  std::vector<std::string> merges;   // gpt2: "a b" lines, rank = index; llama: when given (tokenizer.json),
                                     // only these pairs merge, by rank, instead of by score
  int bos = -1, eos = -1, unk = -1;
  bool add_bos = true;
};

class LmTokenizer {
 public:
  // Throws InputError("", reason) on an inconsistent vocabulary (unknown model, sizes that disagree,
  // special ids out of range).
  explicit LmTokenizer(LmVocab vocab);

  // llama: the text gets a leading space (SentencePiece's dummy prefix), spaces become '▁', then the
  // best-scoring adjacent pair whose concatenation is a token is merged until none is left; pieces
  // that are not tokens become their bytes' <0xNN> tokens (or unk).
  // gpt2: GPT-2's pre-tokenizer regex splits the text, each piece's bytes map to printable code points,
  // and the pair of lowest merge rank is merged until none is left.
  // add_bos prepends BOS (when the vocabulary has one). Invalid UTF-8 is encoded byte by byte.
  std::vector<int> encode(const std::string& text, bool add_bos) const;

  // The bytes that token `id` adds to the output text when it follows token `prev` (llama2.c rules for
  // llama: <0xNN> byte tokens become that byte, '▁' is a space, a leading space after BOS is dropped,
  // control tokens add nothing; gpt2: byte-level decode). Throws InputError on an id out of range.
  std::string decode(int prev, int id) const;
  std::string decode(const std::vector<int>& ids) const;   // whole sequence (prev of the first: none)

  // A readable token for records and figures: '▁'/'Ġ' (a space) shown as '·', byte tokens decoded,
  // control bytes and bytes that are not a whole UTF-8 character escaped like \x0A, special tokens
  // as they are ("<s>").
  std::string display(int id) const;

  int bos() const { return v_.bos; }
  int eos() const { return v_.eos; }
  int unk() const { return v_.unk; }
  bool add_bos() const { return v_.add_bos; }
  int size() const { return static_cast<int>(v_.tokens.size()); }
  const std::string& model() const { return v_.model; }
  const std::string& token(int id) const;   // the vocabulary string

 private:
  LmVocab v_;
  bool gpt2_ = false;
  std::unordered_map<std::string, int> ids_;      // token text -> id (merge candidates)
  std::unordered_map<std::string, int> ranks_;    // gpt2: "a b" -> rank
  int byte_ids_[256];                             // llama: <0xNN> -> id (-1 when absent)
  std::vector<int> byte_of_token_;                // llama: id -> byte for <0xNN> tokens, else -1
  std::string byte_to_unicode_[256];              // gpt2: byte -> UTF-8 of its printable code point
  std::unordered_map<char32_t, int> unicode_to_byte_;

  bool is_control(int id) const;
  void encode_llama(const std::string& text, std::vector<int>& out) const;
  void encode_gpt2(const std::string& text, std::vector<int>& out) const;
  void bpe_gpt2_word(const std::string& word, std::vector<int>& out) const;
};

}  // namespace attnviz
