// Content-sniffing entry point for every INPUT file: attnviz records, other tools' .safetensors,
// .npy, .npz and JSON become AttentionRecords; --tokens/--src-tokens/--tgt-tokens label the axes.
#include <attnviz/io/atomic_file.hpp>
#include <attnviz/error.hpp>
#include <attnviz/record/import.hpp>
#include <attnviz/record/subwords.hpp>
#include <attnviz/io/npy.hpp>
#include <attnviz/io/npz.hpp>
#include <attnviz/io/safetensors.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <climits>
#include <map>
#include <set>

namespace attnviz {

namespace {

enum class Role { Encoder, Decoder, Cross, Other };

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

Role role_of(const std::string& name) {
  static const std::set<std::string> enc = {"", "attention", "attentions", "attn", "attns", "weights",
                                            "self_attention", "self_attentions", "encoder_attention",
                                            "encoder_attentions", "encoder_self_attentions", "enc_attentions"};
  static const std::set<std::string> dec = {"decoder_attention", "decoder_attentions", "decoder_self_attentions",
                                            "dec_attentions"};
  static const std::set<std::string> cross = {"cross_attention", "cross_attentions", "encoder_decoder_attention",
                                              "encoder_decoder_attentions", "cross_attn"};
  const std::string n = lower(name);
  if (enc.count(n)) return Role::Encoder;
  if (dec.count(n)) return Role::Decoder;
  if (cross.count(n)) return Role::Cross;
  return Role::Other;
}

std::string shape_str(const std::vector<std::int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Token arrays of an npz: 1-D, or 2-D [batch, T] (row opt.batch).
std::vector<std::string> token_row(const NpzMember& m, const std::string& path, const ImportOptions& opt) {
  const auto& a = m.array;
  if (a.shape.size() == 1) return a.strings;
  if (a.shape.size() == 2) {
    if (opt.batch < 0 || opt.batch >= a.shape[0])
      throw InputError(path, "--batch " + std::to_string(opt.batch) + " is out of range: '" + m.name + "' has " +
                                 std::to_string(a.shape[0]) + " rows");
    const auto t = a.shape[1];
    return {a.strings.begin() + opt.batch * t, a.strings.begin() + (opt.batch + 1) * t};
  }
  throw InputError(path, "token array '" + m.name + "' has shape " + shape_str(a.shape) + "; expected [T] or [batch, T]");
}

// np.savez("a.npz", *outputs.attentions) names the members arr_0, arr_1, ... (one per layer, in
// the tuple's order). When every float member is arr_<k> for k = 0..N-1 with one shape ([q, k],
// [heads, q, k] or [batch, heads, q, k]), they become one array with a leading layer axis, so the
// layers are named encoder.layer<k>.self instead of N unrelated "arr_<k>" tensors.
void stack_positional_layers(ImportedArrays& in) {
  const size_t n = in.arrays.size();
  if (n == 0) return;
  std::vector<const ImportedArray*> by_index(n, nullptr);
  for (const auto& a : in.arrays) {
    const std::string& nm = a.name;
    if (nm.size() < 5 || nm.compare(0, 4, "arr_") != 0 || nm.size() > 4 + 9) return;
    size_t k = 0;
    const auto [end, ec] = std::from_chars(nm.data() + 4, nm.data() + nm.size(), k);
    if (ec != std::errc() || end != nm.data() + nm.size() || (nm[4] == '0' && nm.size() > 5) || k >= n ||
        by_index[k])
      return;
    by_index[k] = &a;
  }
  const auto& shape = by_index[0]->shape;
  if (shape.size() < 2 || shape.size() > 4) return;
  for (const auto* a : by_index)
    if (a->shape != shape) return;
  ImportedArray stacked;
  stacked.shape = shape;
  if (shape.size() == 2) stacked.shape.insert(stacked.shape.begin(), 1);  // one head
  stacked.shape.insert(stacked.shape.begin(), static_cast<std::int64_t>(n));
  for (const auto* a : by_index) stacked.values.insert(stacked.values.end(), a->values.begin(), a->values.end());
  in.metadata["stacked_layers"] = "arr_0..arr_" + std::to_string(n - 1) + " " + shape_str(shape) +
                                  " (numpy.savez(*attentions)) as layers 0.." + std::to_string(n - 1);
  in.arrays.assign(1, std::move(stacked));
}

ImportedArrays from_npz(const std::string& bytes, const std::string& path, const ImportOptions& opt) {
  ImportedArrays in;
  in.format = "npz";
  std::vector<NpzSkipped> skipped;  // object/integer members: the float ones still load
  for (auto& m : parse_npz(bytes, path, &skipped)) {
    if (m.array.is_string) {
      const std::string axis = token_axis_for(m.name, opt);
      if (axis.empty()) continue;  // other string arrays (labels, ...) are not needed
      in.tokens[axis] = token_row(m, path, opt);
      continue;
    }
    if (!token_axis_for(m.name, opt).empty())
      throw InputError(path, "'" + m.name + "' should be a unicode string array (dtype <U..), found " + m.array.descr);
    in.arrays.push_back({m.name, m.array.shape, std::move(m.array.values)});
  }
  if (in.arrays.empty()) throw InputError(path, "the .npz archive holds no float attention arrays");
  stack_positional_layers(in);
  for (const auto& s : skipped) in.metadata["skipped." + s.name] = s.reason;  // shown by inspect
  return in;
}

ImportedArrays from_npy(const std::string& bytes, const std::string& path) {
  NpyArray a = parse_npy(bytes, path);
  if (a.is_string) throw InputError(path, "holds a string array (dtype " + a.descr + "), not attention weights");
  ImportedArrays in;
  in.format = "npy";
  in.arrays.push_back({"", a.shape, std::move(a.values)});
  return in;
}

// Safetensors written by other tools (no attnviz.format): every tensor is an attention array,
// named like npz members; tokens may sit in __metadata__ as JSON string lists.
ImportedArrays from_foreign_safetensors(const StFile& f, const std::string& path) {
  ImportedArrays in;
  in.format = "safetensors";
  for (const auto& [k, v] : f.metadata) {
    const std::string axis = token_axis_for(k);
    if (axis.empty()) {
      in.metadata[k] = v;
      continue;
    }
    try {
      in.tokens[axis] = nlohmann::json::parse(v).get<std::vector<std::string>>();
    } catch (const nlohmann::json::exception&) {
      throw InputError(path, "__metadata__ '" + k + "' is not a JSON list of strings");
    }
  }
  for (const auto& t : f.tensors) in.arrays.push_back({t.name, t.shape, t.data});
  if (in.arrays.empty()) throw InputError(path, "holds no tensors");
  return in;
}

void check_tokens_utf8(const std::map<std::string, std::vector<std::string>>& tokens, const std::string& path) {
  for (const auto& [axis, toks] : tokens)
    for (size_t i = 0; i < toks.size(); ++i)
      if (!valid_utf8(toks[i]))
        throw InputError(path, "token " + std::to_string(i) + " of axis '" + axis + "' is not valid UTF-8");
}

bool uses_axis(const AttentionRecord& r, const std::string& axis) {
  for (const auto& t : r.tensors)
    if (t.query_axis == axis || t.key_axis == axis) return true;
  return false;
}

// A token file must label an axis of matching length: the error names the option, the file, the
// tensor, the axis and both counts.
void check_token_file(const AttentionRecord& r, const std::string& flag, const std::string& path,
                      const std::string& axis) {
  const auto& toks = r.tokens.at(axis);
  for (const auto& t : r.tensors) {
    auto check = [&](const std::string& a, int n, const char* which) {
      if (a == axis && static_cast<int>(toks.size()) != n)
        throw InputError(path, flag + " has " + std::to_string(toks.size()) + " tokens but the " + which +
                                   " axis of tensor '" + t.name + "' has " + std::to_string(n));
    };
    check(t.query_axis, t.queries, "query");
    check(t.key_axis, t.keys, "key");
  }
}

void apply_token_files(AttentionRecord& r, const ImportOptions& opt, const std::string& path) {
  const bool src = !opt.src_tokens_file.empty(), tgt = !opt.tgt_tokens_file.empty();
  if ((src || tgt) && opt.tokens_file.empty() && !uses_axis(r, "source") && !uses_axis(r, "target")) {
    // A single cross-attention array [T, S] imported as self-attention: relabel its axes.
    for (auto& t : r.tensors) {
      if (t.query_axis == "tokens" || t.query_axis.empty()) t.query_axis = "target";
      if (t.key_axis == "tokens" || t.key_axis.empty()) t.key_axis = "source";
    }
  }
  auto apply = [&](const std::string& file, const std::string& flag, const std::string& axis) {
    if (file.empty()) return;
    r.tokens[axis] = read_token_file(file);
    if (axis == "tokens")
      for (auto& t : r.tensors) {
        if (t.query_axis.empty()) t.query_axis = axis;
        if (t.key_axis.empty()) t.key_axis = axis;
      }
    if (!uses_axis(r, axis)) {
      std::set<std::string> have;
      for (const auto& t : r.tensors) have.insert({t.query_axis, t.key_axis});
      have.erase("");
      std::string list;
      for (const auto& h : have) list += (list.empty() ? "" : ", ") + h;
      throw UsageError(flag + " " + file + ": no tensor has a '" + axis + "' axis (this input's axes: " +
                       (list.empty() ? "none" : list) + ")");
    }
    check_token_file(r, flag + " " + file, path, axis);
  };
  apply(opt.tokens_file, "--tokens", "tokens");
  apply(opt.src_tokens_file, "--src-tokens", "source");
  apply(opt.tgt_tokens_file, "--tgt-tokens", "target");
}

// The binary formats by their magic bytes; text by extension and content: .csv/.tsv/.tab files are
// CSV/TSV even when they start with '[' ("[CLS],the,..." is a header row, not JSON); other text
// is JSON when it starts with '{' or with '[' and a JSON value, CSV/TSV when its first lines hold
// numbers between commas, tabs or spaces.
FileKind input_kind(const std::string& bytes, const std::string& path) {
  const FileKind k = detect_kind(bytes.substr(0, 64));
  if (k != FileKind::Json && k != FileKind::Unknown) return k;
  const std::string ext = extension_lower(path);
  if (ext == ".csv" || ext == ".tsv" || ext == ".tab") return FileKind::Delimited;
  if (k == FileKind::Json) {
    const size_t i = bytes.find_first_not_of(" \t\r\n");
    const size_t j = i + 1 < bytes.size() ? bytes.find_first_not_of(" \t\r\n", i + 1) : std::string::npos;
    if (bytes[i] == '[' && j != std::string::npos && std::isalpha(static_cast<unsigned char>(bytes[j])) &&
        std::string("NInft").find(bytes[j]) == std::string::npos && looks_like_delimited(bytes))
      return FileKind::Delimited;  // "[CLS]\tthe\t..." in a .txt
    return k;
  }
  return !bytes.empty() && looks_like_delimited(bytes) ? FileKind::Delimited : k;
}

}  // namespace

std::string extension_lower(const std::string& path) { return lower(std::filesystem::path(path).extension().string()); }

std::string token_axis_for(const std::string& name) {
  const std::string n = lower(name);
  if (n == "tokens" || n == "input_tokens" || n == "words") return "tokens";
  if (n == "src_tokens" || n == "source_tokens" || n == "encoder_tokens" || n == "article_lst") return "source";
  if (n == "tgt_tokens" || n == "target_tokens" || n == "decoder_tokens" || n == "decoded_lst") return "target";
  return "";
}

std::string token_axis_for(const std::string& name, const ImportOptions& opt) {
  if (!opt.tokens_key.empty() && name == opt.tokens_key) return "tokens";
  if (!opt.src_key.empty() && name == opt.src_key) return "source";
  if (!opt.tgt_key.empty() && name == opt.tgt_key) return "target";
  return token_axis_for(name);
}

FileKind detect_kind(const std::string& head) {
  if (looks_like_npy(head)) return FileKind::Npy;
  if (looks_like_zip(head)) return FileKind::Npz;
  if (looks_like_safetensors(head)) return FileKind::Safetensors;
  for (char c : head) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '{' || c == '[') return FileKind::Json;
    break;
  }
  // A JSON header after 8 bytes whose length is implausible: still safetensors, so the parser can
  // say precisely what is wrong with the header length.
  if (head.size() >= 9 && (head[8] == '{' || head[8] == '[')) return FileKind::Safetensors;
  return FileKind::Unknown;
}

std::vector<std::string> read_token_file(const std::filesystem::path& path) {
  std::string bytes = read_file(path);
  std::vector<std::string> out;
  size_t start = 0;
  if (bytes.compare(0, 3, "\xEF\xBB\xBF") == 0) start = 3;  // UTF-8 byte-order mark
  while (start < bytes.size()) {
    size_t end = bytes.find('\n', start);
    if (end == std::string::npos) end = bytes.size();
    std::string line = bytes.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!valid_utf8(line))
      throw InputError(path.string(), "line " + std::to_string(out.size() + 1) + " is not valid UTF-8");
    out.push_back(std::move(line));
    start = end + 1;
  }
  return out;
}

AttentionRecord record_from_arrays(const ImportedArrays& in, const std::string& path, const ImportOptions& opt) {
  AttentionRecord r;
  r.tokens = in.tokens;
  r.metadata = in.metadata;
  check_tokens_utf8(r.tokens, path);
  // Names become JSON keys when the record is saved: they must be valid UTF-8 too.
  for (const auto& a : in.arrays)
    if (!valid_utf8(a.name)) throw InputError(path, "an array name is not valid UTF-8");
  for (const auto& [k, v] : in.metadata)
    if (!valid_utf8(k) || !valid_utf8(v)) throw InputError(path, "a metadata entry is not valid UTF-8");
  bool enc_dec = (r.tokens.count("source") || r.tokens.count("target")) && !r.tokens.count("tokens");
  for (const auto& a : in.arrays) enc_dec |= role_of(a.name) == Role::Decoder || role_of(a.name) == Role::Cross;
  std::string summary;
  for (const auto& original : in.arrays) {
    const std::string label = original.name.empty() ? "array" : "'" + original.name + "'";
    if (original.shape.empty() || original.shape.size() > 5)
      throw InputError(path, label + " has shape " + shape_str(original.shape) +
                                 "; expected [k], [q, k], [heads, q, k], [layers, heads, q, k] or [layers, batch, heads, q, k]");
    // A 1-D vector [K] (text-attention exports) is one query row [1, K].
    const bool vector_row = original.shape.size() == 1;
    ImportedArray shaped;
    const ImportedArray* ap = &original;
    if (vector_row) {
      shaped = original;
      shaped.shape.insert(shaped.shape.begin(), 1);
      ap = &shaped;
    }
    const ImportedArray& a = *ap;
    const size_t rank = a.shape.size();
    for (auto d : a.shape)
      if (d <= 0 || d > INT_MAX / 4)
        throw InputError(path, label + " has shape " + shape_str(a.shape) + " with an empty or oversized dimension");
    std::int64_t numel = 1;
    for (auto d : a.shape)
      if (__builtin_mul_overflow(numel, d, &numel)) throw InputError(path, label + " shape overflows");
    if (static_cast<std::int64_t>(a.values.size()) != numel)
      throw InputError(path, label + " holds " + std::to_string(a.values.size()) + " values but its shape " +
                                 shape_str(a.shape) + " needs " + std::to_string(numel));
    // --transpose: the file stores keys x queries; swap the last two axes.
    std::vector<float> transposed;
    const std::vector<float>& values = opt.transpose ? transposed : a.values;
    const auto K = opt.transpose ? a.shape[rank - 2] : a.shape[rank - 1];
    const auto Q = opt.transpose ? a.shape[rank - 1] : a.shape[rank - 2];
    if (opt.transpose) {
      transposed.resize(a.values.size());
      const std::int64_t blocks = numel / (Q * K);
      for (std::int64_t m = 0; m < blocks; ++m)
        for (std::int64_t q = 0; q < Q; ++q)
          for (std::int64_t k = 0; k < K; ++k) transposed[(m * Q + q) * K + k] = a.values[(m * K + k) * Q + q];
    }
    const auto H = rank >= 3 ? a.shape[rank - 3] : 1;
    const auto B = rank == 5 ? a.shape[1] : 1;
    const auto L = rank >= 4 ? a.shape[0] : 1;
    if (rank == 5 && (opt.batch < 0 || opt.batch >= B))
      throw InputError(path, "--batch " + std::to_string(opt.batch) + " is out of range: " + label +
                                 " has a batch axis of " + std::to_string(B));
    const std::int64_t b = rank == 5 ? opt.batch : 0;
    const Role role = role_of(a.name);
    std::string qa = "tokens", ka = "tokens";
    if (role == Role::Encoder && enc_dec) qa = ka = "source";
    if (role == Role::Decoder) qa = ka = "target";
    // A non-square array can only be cross-attention: queries are target tokens, keys source tokens.
    if (role == Role::Cross || Q != K || original.cross) qa = "target", ka = "source";
    // ... unless the file has only "tokens" (a 1 x N text-attention row): the axis of the tokens'
    // length keeps them, the other one has no tokens.
    if (Q != K && role != Role::Cross && r.tokens.count("tokens") && !r.tokens.count("source") &&
        !r.tokens.count("target")) {
      const auto n = static_cast<std::int64_t>(r.tokens.at("tokens").size());
      if (K == n) qa = "query", ka = "tokens";
      else if (Q == n) qa = "tokens", ka = "key";
    }
    for (std::int64_t l = 0; l < L; ++l) {
      std::string name;
      const std::string ls = "layer" + std::to_string(l);
      switch (role) {
        case Role::Encoder:
          // Named by shape: a square generic array stays encoder self-attention; a vector is
          // "attention"; any other non-square one is cross-attention (its axes say target/source).
          if (vector_row) name = "attention";
          else if (Q != K || original.cross) name = rank >= 4 ? ls + ".cross" : "cross";
          else name = "encoder." + ls + ".self";
          break;
        case Role::Decoder: name = "decoder." + ls + ".self"; break;
        case Role::Cross: name = "decoder." + ls + ".cross"; break;
        case Role::Other: name = rank >= 4 ? a.name + "." + ls + ".self" : a.name; break;
      }
      AttentionTensor t(name, static_cast<int>(H), static_cast<int>(Q), static_cast<int>(K), qa, ka);
      const auto begin = values.begin() + ((l * B + b) * H) * Q * K;
      std::copy(begin, begin + H * Q * K, t.data.begin());
      r.tensors.push_back(std::move(t));
    }
    summary += (summary.empty() ? "" : ", ") + (a.name.empty() ? std::string("array") : a.name) + " " +
               shape_str(original.shape) + (opt.transpose ? " (transposed)" : "");
  }
  r.metadata["imported_from"] = in.format + ": " + summary;
  apply_token_files(r, opt, path);
  r.validate(path);
  return r;
}

std::vector<AttentionRecord> import_bytes(const std::string& bytes, const std::string& path, const ImportOptions& opt) {
  std::vector<AttentionRecord> out;
  switch (input_kind(bytes, path)) {
    case FileKind::Safetensors: {
      StFile f = parse_safetensors(bytes, path);
      if (f.metadata.count("attnviz.format")) {
        out = records_from_safetensors(f, path);
        for (auto& r : out) {
          if (opt.transpose) transpose_record(r);
          check_tokens_utf8(r.tokens, path);
          apply_token_files(r, opt, path);
          r.validate(path);
        }
      } else {
        out.push_back(record_from_arrays(from_foreign_safetensors(f, path), path, opt));
      }
      break;
    }
    case FileKind::Npy: out.push_back(record_from_arrays(from_npy(bytes, path), path, opt)); break;
    case FileKind::Npz: out.push_back(record_from_arrays(from_npz(bytes, path, opt), path, opt)); break;
    case FileKind::Json: out.push_back(record_from_arrays(parse_attention_json(bytes, path, opt), path, opt)); break;
    case FileKind::Delimited: out.push_back(record_from_arrays(parse_attention_csv(bytes, path), path, opt)); break;
    case FileKind::Unknown:
      if (bytes.empty()) throw InputError(path, "is empty");
      if (bytes.size() < 16)
        throw InputError(path, "truncated: only " + std::to_string(bytes.size()) +
                                   " bytes, too short for any supported format");
      throw InputError(path, "unrecognised format (expected an attnviz record, .safetensors, .npy, .npz, JSON, "
                             "or CSV/TSV numbers; detected by content, and by a .csv/.tsv extension for text)");
  }
  if (out.empty()) throw InputError(path, "holds no attention tensors");
  for (const auto& r : out)
    if (r.tensors.empty()) throw InputError(path, "holds no attention tensors");
  if (!opt.crop.empty())
    for (auto& r : out) {
      crop_record(r, opt.crop);
      r.validate(path);
    }
  if (opt.merge_subwords)
    for (auto& r : out) {
      merge_subwords(r);
      r.validate(path);
    }
  return out;
}

std::vector<AttentionRecord> import_records(const std::filesystem::path& path, const ImportOptions& opt) {
  return import_bytes(read_file(path), path.string(), opt);
}

AttentionRecord import_record(const std::filesystem::path& path, const ImportOptions& opt) {
  auto all = import_records(path, opt);
  if (opt.sample < 0 || opt.sample >= static_cast<int>(all.size())) {
    // Members of an .npz (or keys of a JSON) are tensors of one sample, not samples: say so.
    std::string members;
    if (all.size() == 1 && all[0].tensors.size() > 1)
      for (const auto& t : all[0].tensors) members += (members.empty() ? "" : ", ") + t.name;
    throw InputError(path.string(), "has " + std::to_string(all.size()) + " sample(s), --sample " +
                                        std::to_string(opt.sample) + " is out of range" +
                                        (members.empty() ? "" : "; its arrays are tensors of that one sample (" + members +
                                                                    "): pick one with --tensor"));
  }
  return std::move(all[opt.sample]);
}

// ---- padding and transposition -----------------------------------------------------------------

ZeroLines zero_lines(const AttentionTensor& t) {
  std::vector<bool> row_nz(t.queries, false), col_nz(t.keys, false);
  for (int h = 0; h < t.heads; ++h)
    for (int q = 0; q < t.queries; ++q)
      for (int k = 0; k < t.keys; ++k)
        if (t.at(h, q, k) != 0.0f) row_nz[q] = true, col_nz[k] = true;  // NaN counts as non-zero
  ZeroLines z;
  for (int q = 0; q < t.queries; ++q) z.rows += row_nz[q] ? 0 : 1;
  for (int k = 0; k < t.keys; ++k) z.cols += col_nz[k] ? 0 : 1;
  for (int q = t.queries - 1; q >= 0 && !row_nz[q]; --q) ++z.trailing_rows;
  for (int k = t.keys - 1; k >= 0 && !col_nz[k]; --k) ++z.trailing_cols;
  return z;
}

namespace {

AttentionTensor cropped(const AttentionTensor& t, int queries, int keys) {
  AttentionTensor c(t.name, t.heads, queries, keys, t.query_axis, t.key_axis);
  for (int h = 0; h < t.heads; ++h)
    for (int q = 0; q < queries; ++q)
      for (int k = 0; k < keys; ++k) c.at(h, q, k) = t.at(h, q, k);
  return c;
}

}  // namespace

void crop_record(AttentionRecord& r, const std::string& spec) {
  // New [queries, keys] of each tensor; sides that share a named axis end up the same length.
  std::vector<std::pair<int, int>> size(r.tensors.size());
  if (spec == "auto") {
    // Per named axis, the shortest length that keeps every non-zero row/column of every tensor on it:
    // a self-attention head with masked key columns loses those columns and the same query rows.
    std::map<std::string, int> keep;
    auto lower_to = [&](const std::string& axis, int n) {
      if (axis.empty()) return;
      auto it = keep.find(axis);
      if (it == keep.end()) keep[axis] = n;
      else it->second = std::min(it->second, n);
    };
    std::vector<ZeroLines> z;
    for (const auto& t : r.tensors) {
      z.push_back(zero_lines(t));
      // An all-zero tensor keeps one row and column (an empty one would be refused).
      lower_to(t.query_axis, std::max(1, t.queries - z.back().trailing_rows));
      lower_to(t.key_axis, std::max(1, t.keys - z.back().trailing_cols));
    }
    for (size_t i = 0; i < r.tensors.size(); ++i) {
      const auto& t = r.tensors[i];
      const int q = t.query_axis.empty() ? std::max(1, t.queries - z[i].trailing_rows) : keep[t.query_axis];
      const int k = t.key_axis.empty() ? std::max(1, t.keys - z[i].trailing_cols) : keep[t.key_axis];
      size[i] = {std::min(q, t.queries), std::min(k, t.keys)};
    }
  } else {
    int Q = 0, K = 0;
    const size_t comma = spec.find(',');
    auto num = [](const std::string& s, int& v) {
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      return ec == std::errc() && p == s.data() + s.size() && v > 0;
    };
    if (comma == std::string::npos || !num(spec.substr(0, comma), Q) || !num(spec.substr(comma + 1), K))
      throw UsageError("--crop '" + spec + "': expected 'auto' or Q,K (the number of queries and keys to keep)");
    for (size_t i = 0; i < r.tensors.size(); ++i) {
      const auto& t = r.tensors[i];
      if (!t.query_axis.empty() && t.query_axis == t.key_axis && std::min(Q, t.queries) != std::min(K, t.keys))
        throw UsageError("--crop " + spec + ": tensor '" + t.name + "' is self-attention (both axes are '" +
                         t.query_axis + "'): give the same count twice");
      size[i] = {std::min(Q, t.queries), std::min(K, t.keys)};
    }
  }
  for (size_t i = 0; i < r.tensors.size(); ++i) {
    auto& t = r.tensors[i];
    const auto [q, k] = size[i];
    if (q == t.queries && k == t.keys) continue;
    for (auto* aux : {&r.gradients, &r.relevance})
      for (auto& g : *aux)
        if (g.name == t.name) g = cropped(g, q, k);
    t = cropped(t, q, k);
  }
  for (const auto& t : r.tensors) {
    auto cut = [&](const std::string& axis, int n) {
      auto it = r.tokens.find(axis);
      if (it != r.tokens.end() && static_cast<int>(it->second.size()) > n) it->second.resize(n);
    };
    cut(t.query_axis, t.queries);
    cut(t.key_axis, t.keys);
  }
}

void transpose_record(AttentionRecord& r) {
  auto flip = [](AttentionTensor& t) {
    AttentionTensor u(t.name, t.heads, t.keys, t.queries, t.key_axis, t.query_axis);
    for (int h = 0; h < t.heads; ++h)
      for (int q = 0; q < t.queries; ++q)
        for (int k = 0; k < t.keys; ++k) u.at(h, k, q) = t.at(h, q, k);
    t = std::move(u);
  };
  for (auto& t : r.tensors) flip(t);
  for (auto& g : r.gradients) flip(g);
  for (auto& g : r.relevance) flip(g);
}

}  // namespace attnviz
