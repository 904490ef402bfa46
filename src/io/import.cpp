// Content-sniffing entry point for every INPUT file, and --tokens/--src-tokens/--tgt-tokens.
#include <attnviz/atomic_file.hpp>
#include <attnviz/error.hpp>
#include <attnviz/import.hpp>
#include <attnviz/safetensors.hpp>

#include <fstream>

namespace attnviz {

FileKind detect_kind(const std::string& head) {
  if (head.size() >= 6 && head.compare(0, 6, "\x93NUMPY") == 0) return FileKind::Npy;
  if (head.size() >= 4 && (head.compare(0, 4, "PK\x03\x04") == 0 || head.compare(0, 4, "PK\x05\x06") == 0))
    return FileKind::Npz;
  if (looks_like_safetensors(head)) return FileKind::Safetensors;
  for (char c : head) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '{' || c == '[') return FileKind::Json;
    break;
  }
  return FileKind::Unknown;
}

std::vector<std::string> read_token_file(const std::filesystem::path& path) {
  std::string bytes = read_file(path);
  std::vector<std::string> out;
  size_t start = 0;
  while (start < bytes.size()) {
    size_t end = bytes.find('\n', start);
    if (end == std::string::npos) end = bytes.size();
    std::string line = bytes.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.push_back(line);
    start = end + 1;
  }
  return out;
}

namespace {

void apply_token_files(AttentionRecord& r, const ImportOptions& opt) {
  if (!opt.tokens_file.empty()) {
    r.tokens["tokens"] = read_token_file(opt.tokens_file);
    for (auto& t : r.tensors)
      if (t.queries == t.keys) t.query_axis = t.key_axis = "tokens";
  }
  if (!opt.src_tokens_file.empty()) {
    r.tokens["source"] = read_token_file(opt.src_tokens_file);
    for (auto& t : r.tensors) t.key_axis = "source";
  }
  if (!opt.tgt_tokens_file.empty()) {
    r.tokens["target"] = read_token_file(opt.tgt_tokens_file);
    for (auto& t : r.tensors) t.query_axis = "target";
  }
}

}  // namespace

std::vector<AttentionRecord> import_records(const std::filesystem::path& path, const ImportOptions& opt) {
  std::string bytes = read_file(path);
  std::vector<AttentionRecord> out;
  switch (detect_kind(bytes.substr(0, 64))) {
    case FileKind::Safetensors:
      out = records_from_safetensors(parse_safetensors(bytes, path.string()), path.string());
      break;
    default:
      throw InputError(path.string(), "unrecognised format (expected an attnviz record or .safetensors)");
  }
  if (out.empty()) throw InputError(path.string(), "holds no attention tensors");
  for (auto& r : out) {
    apply_token_files(r, opt);
    r.validate(path.string());
  }
  return out;
}

AttentionRecord import_record(const std::filesystem::path& path, const ImportOptions& opt) {
  auto all = import_records(path, opt);
  if (opt.sample < 0 || opt.sample >= static_cast<int>(all.size()))
    throw InputError(path.string(), "has " + std::to_string(all.size()) + " samples, --sample " +
                                        std::to_string(opt.sample) + " is out of range");
  return std::move(all[opt.sample]);
}

}  // namespace attnviz
