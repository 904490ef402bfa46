// Loading attention from any supported file, detected by content (magic bytes), not extension:
// attnviz records and other .safetensors, .npy, .npz, JSON.
#pragma once
#include <attnviz/record.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace attnviz {

struct ImportOptions {
  int sample = 0;               // which record of a multi-sample file
  int batch = 0;                // which batch entry of a 5-D [layers, batch, heads, q, k] array
  std::string tokens_file;      // one token per line: labels both axes of self-attention
  std::string src_tokens_file;  // source (key) tokens of cross-attention
  std::string tgt_tokens_file;  // target (query) tokens of cross-attention
};

enum class FileKind { Safetensors, Npy, Npz, Json, Unknown };
FileKind detect_kind(const std::string& head);

// All samples in the file (importers of single-sample formats return one).
std::vector<AttentionRecord> import_records(const std::filesystem::path& path, const ImportOptions& opt = {});
// The one sample opt.sample.
AttentionRecord import_record(const std::filesystem::path& path, const ImportOptions& opt = {});

// Reads a token file (one token per line, UTF-8 checked).
std::vector<std::string> read_token_file(const std::filesystem::path& path);

}  // namespace attnviz
