// Loading attention from any supported file, detected by content (magic bytes), not extension:
// attnviz records and other .safetensors, .npy, .npz, JSON.
#pragma once
#include <attnviz/record/record.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace attnviz {

struct ImportOptions {
  int sample = 0;               // which record of a multi-sample file
  int batch = 0;                // which batch entry of a 5-D [layers, batch, heads, q, k] array
  std::string tokens_file;      // one token per line: labels both axes of self-attention
  std::string src_tokens_file;  // source (key) tokens of cross-attention
  std::string tgt_tokens_file;  // target (query) tokens of cross-attention
  bool transpose = false;       // the file stores [.., keys, queries] (e.g. LAS speech attention): swap the last two axes
  std::string crop;             // "" | "auto": drop all-zero (padding) rows/columns at the end of each axis | "Q,K"
  std::string key;              // JSON: the key that holds the attention ("" = every numeric array)
  std::string tokens_key;       // JSON/npz: name of the token list of self-attention (default "tokens", ...)
  std::string src_key;          // ... of the source (key) tokens (default "source_tokens", "article_lst", ...)
  std::string tgt_key;          // ... of the target (query) tokens (default "target_tokens", "decoded_lst", ...)
  bool merge_subwords = false;  // WordPiece / BPE pieces to words (record/subwords.hpp), after cropping
};

enum class FileKind { Safetensors, Npy, Npz, Json, Delimited, Unknown };
FileKind detect_kind(const std::string& head);
// Text whose first lines split by ',', tab or spaces into cells with at least one number (the
// content test for CSV/TSV when the extension is not .csv/.tsv/.tab).
bool looks_like_delimited(const std::string& bytes);
// A path's extension in lower case with its dot (".csv"), "" when it has none.
std::string extension_lower(const std::string& path);

// What every foreign container (npy, npz, JSON, other tools' safetensors) is read into before it
// becomes a record: named float arrays of rank 2..5 and tokens per axis ("tokens", "source", "target").
struct ImportedArray {
  std::string name;                  // container name: "encoder_attentions", "attention", "" (bare .npy)
  std::vector<std::int64_t> shape;   // [q, k] | [heads, q, k] | [layers, heads, q, k] | [layers, batch, heads, q, k]
  std::vector<float> values;         // C order
  bool cross = false;                // queries and keys are different sequences even when square (CSV row/column labels differ)
};
struct ImportedArrays {
  std::string format;                // "npy", "npz", "json", "safetensors", "csv", "tsv" (shown by inspect)
  std::vector<ImportedArray> arrays;
  std::map<std::string, std::vector<std::string>> tokens;  // axis -> tokens
  std::map<std::string, std::string> metadata;
};

// Array names and what they become (case-insensitive):
//   encoder_attentions, attentions, attention, attn, ""  -> encoder.layerN.self (square)
//                                                           cross / layerN.cross (not square)
//   decoder_attentions                                     -> decoder.layerN.self
//   cross_attentions, encoder_decoder_attentions           -> decoder.layerN.cross
//   anything else X: rank 4/5 -> X.layerN.self, rank 2/3 -> X
//   a 1-D vector [K] (any name)                            -> "attention" (or X), one query row [1, K]
// Axes: "tokens" for an encoder-only file; with decoder or cross arrays (or only source/target
// tokens) the encoder uses "source", the decoder "target", cross-attention queries "target" and
// keys "source". A non-square array with only "tokens": the axis of the tokens' length keeps them,
// the other is "query" or "key". A 5-D array keeps batch entry opt.batch. opt.transpose swaps the
// last two axes first.
AttentionRecord record_from_arrays(const ImportedArrays& in, const std::string& path, const ImportOptions& opt);

// Token array names: tokens/input_tokens -> "tokens"; src_tokens/source_tokens/encoder_tokens/
// article_lst -> "source"; tgt_tokens/target_tokens/decoder_tokens/decoded_lst -> "target" (the
// last two: pointer-generator output). Empty for other names. opt's token keys come first.
std::string token_axis_for(const std::string& name);
std::string token_axis_for(const std::string& name, const ImportOptions& opt);

// The JSON forms (documented in the README, "The JSON forms"):
//   {"tokens": [...], "attention": [layer][head][q][k]}
//   {"source_tokens": [...], "target_tokens": [...], "encoder_attention": [l][h][S][S],
//    "decoder_attention": [l][h][T][T], "cross_attention": [l][h][T][S]}
// Python's NaN/Infinity/-Infinity literals and null (JavaScript's NaN) are kept as NaN/Inf.
// Attention arrays: opt.key alone when set, else every numeric array of rank 2..5 (a rank-1 one
// only when there is no other). Other keys are metadata or skipped; when no key fits, the error
// lists the keys found and names --key.
ImportedArrays parse_attention_json(const std::string& bytes, const std::string& path, const ImportOptions& opt = {});

// CSV/TSV (documented in the README, "CSV and TSV"): one [queries, keys] matrix as
// pandas.DataFrame(att, index=tokens, columns=tokens).to_csv(...) (sep="," or "\t", with or without
// index/header) and np.savetxt(...) write it. Delimiter from the content (',' or tab, runs of spaces
// when neither), the extension deciding only ties; quoted fields with "" for '"'; CRLF; a UTF-8 BOM;
// np.savetxt's "# " header/footer lines (kept as metadata "comments"). The header row gives the
// key tokens, a first column of text the query tokens (pandas' default 0..n-1 labels are dropped).
// Numbers as numpy/pandas write them; nan/inf (any case) and empty cells (pandas' NaN) are kept as
// NaN/Inf. Square with equal (or one set of) labels: "tokens" self-attention; otherwise
// cross-attention, queries "target", keys "source". Errors name row and column counted from 1.
ImportedArrays parse_attention_csv(const std::string& bytes, const std::string& path);

// ---- padding ---------------------------------------------------------------------------------

// All-zero rows and columns of a tensor (zero in every head): masked padding positions.
struct ZeroLines {
  int rows = 0, cols = 0;                  // all-zero query rows / key columns, anywhere
  int trailing_rows = 0, trailing_cols = 0;  // of those, the run at the end
};
ZeroLines zero_lines(const AttentionTensor& t);

// Crops every tensor (and gradient) of the record, and its tokens. spec "auto": each axis is cut
// to its last row/column that is not all zero in every tensor using it (padding at the end; the
// padded positions of self-attention go from both sides); "Q,K": the first Q queries and K keys.
// Throws UsageError for a bad spec or Q != K on a self-attention axis.
void crop_record(AttentionRecord& record, const std::string& spec);

// Swaps queries and keys of every tensor (and gradient), with their axes.
void transpose_record(AttentionRecord& record);

// Import from bytes already in memory (what import_records does after reading the file).
std::vector<AttentionRecord> import_bytes(const std::string& bytes, const std::string& path,
                                         const ImportOptions& opt = {});

// All samples in the file (importers of single-sample formats return one).
std::vector<AttentionRecord> import_records(const std::filesystem::path& path, const ImportOptions& opt = {});
// The one sample opt.sample.
AttentionRecord import_record(const std::filesystem::path& path, const ImportOptions& opt = {});

// Reads a token file (one token per line, UTF-8 checked).
std::vector<std::string> read_token_file(const std::filesystem::path& path);

}  // namespace attnviz
