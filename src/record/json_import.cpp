// JSON attention import: {"tokens", "attention": [layer][head][q][k]} and the encoder-decoder form
// with source/target tokens; NaN/Infinity literals (Python's json) and null are kept as NaN/Inf.
#include <attnviz/error.hpp>
#include <attnviz/io/limits.hpp>
#include <attnviz/record/import.hpp>
#include <attnviz/io/npy.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>

namespace attnviz {

using json = nlohmann::json;

namespace {

constexpr int kMaxDepth = 64;  // attention needs 5 levels; deeper nesting is refused before parsing

// Python's json.dump writes NaN, Infinity and -Infinity as bare words, which strict JSON (and
// nlohmann) refuses. Outside strings, rewrite them as the strings "NaN"/"Infinity"/"-Infinity"
// that the array reader below turns back into numbers. Also bounds the nesting depth.
std::string normalise(const std::string& in, const std::string& path) {
  std::string out;
  out.reserve(in.size() + 16);
  bool in_str = false;
  int depth = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (in_str) {
      out.push_back(c);
      if (c == '\\' && i + 1 < in.size()) out.push_back(in[++i]);
      else if (c == '"') in_str = false;
      continue;
    }
    if (c == '"') {
      in_str = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxDepth)
        throw InputError(path, "JSON nests deeper than " + std::to_string(kMaxDepth) + " levels at byte " +
                                   std::to_string(i));
    } else if (c == ']' || c == '}') {
      --depth;
    } else if (in.compare(i, 3, "NaN") == 0) {
      out += "\"NaN\"";
      i += 2;
      continue;
    } else if (in.compare(i, 8, "Infinity") == 0) {
      out += "\"Infinity\"";
      i += 7;
      continue;
    } else if (in.compare(i, 9, "-Infinity") == 0) {
      out += "\"-Infinity\"";
      i += 8;
      continue;
    }
    out.push_back(c);
  }
  return out;
}

bool special_number(const json& v, float& f) {
  if (v.is_null()) {
    f = std::numeric_limits<float>::quiet_NaN();
    return true;
  }
  if (!v.is_string()) return false;
  const auto& s = v.get_ref<const std::string&>();
  if (s == "NaN") f = std::numeric_limits<float>::quiet_NaN();
  else if (s == "Infinity") f = std::numeric_limits<float>::infinity();
  else if (s == "-Infinity") f = -std::numeric_limits<float>::infinity();
  else return false;
  return true;
}

// Shape of a nested numeric array, from its first elements: [[..],[..]] -> [2, n].
std::vector<std::int64_t> infer_shape(const json& v) {
  std::vector<std::int64_t> shape;
  const json* p = &v;
  while (p->is_array()) {
    shape.push_back(static_cast<std::int64_t>(p->size()));
    if (p->empty()) break;
    p = &(*p)[0];
  }
  return shape;
}

// Flattens a rectangular nested array of numbers into out (C order); throws naming the position of
// the first ragged row or non-number.
void flatten(const json& v, const std::vector<std::int64_t>& shape, size_t level, std::vector<float>& out,
             std::string& where, const std::string& path, const std::string& key) {
  if (level == shape.size()) {
    float f;
    if (v.is_number()) out.push_back(v.get<float>());
    else if (special_number(v, f)) out.push_back(f);
    else throw InputError(path, "'" + key + "'" + where + " is not a number");
    return;
  }
  if (!v.is_array() || static_cast<std::int64_t>(v.size()) != shape[level])
    throw InputError(path, "'" + key + "'" + where + " should be an array of " + std::to_string(shape[level]) +
                               " entries (rows must all have the same length)");
  const size_t len = where.size();
  for (size_t i = 0; i < v.size(); ++i) {
    where += "[" + std::to_string(i) + "]";
    flatten(v[i], shape, level + 1, out, where, path, key);
    where.resize(len);
  }
}

}  // namespace

namespace {

// "array of 400 strings", "[3][5] numbers", "object", ...: how a key's value looks, for the message
// that lists the keys of a JSON with no usable attention.
std::string describe(const json& v) {
  if (v.is_array()) {
    if (v.empty()) return "empty array";
    if (v[0].is_string()) return "array of " + std::to_string(v.size()) + " strings";
    std::string dims;
    for (auto d : infer_shape(v)) dims += "[" + std::to_string(d) + "]";
    const json* p = &v;
    while (p->is_array() && !p->empty()) p = &(*p)[0];
    return dims + (p->is_number() || p->is_null() ? " numbers" : std::string(" ") + p->type_name());
  }
  return v.type_name();
}

// True when the first leaf of a nested array is a number (or NaN/Inf/null): an attention
// candidate, read in full so that a later non-number is reported with its position. Lists of
// strings (pointer-generator's article_lst) are not candidates.
bool first_leaf_numeric(const json& v) {
  const json* p = &v;
  while (p->is_array() && !p->empty()) p = &(*p)[0];
  float f;
  return p->is_array() || p->is_number() || special_number(*p, f);  // [] / [[]]: its empty dimension is reported
}

}  // namespace

ImportedArrays parse_attention_json(const std::string& bytes, const std::string& path, const ImportOptions& opt) {
  // A parsed JSON number takes 16 bytes however short its text ("0," is 2): refuse before parsing
  // a file whose tree could exceed the --max-mib limit (io/limits.hpp).
  check_array_bytes(static_cast<std::uint64_t>(bytes.size()) * 8, path,
                    "parsing this " + human_bytes(bytes.size()) + " JSON file");
  json j;
  try {
    j = json::parse(normalise(bytes, path));
  } catch (const json::exception& e) {
    throw InputError(path, "not valid JSON: " + std::string(e.what()));
  }
  // json.dump(attentions.tolist(), f): a bare numeric array is the attention itself.
  if (j.is_array() && first_leaf_numeric(j)) j = json{{"attention", std::move(j)}};
  if (!j.is_object())
    throw InputError(path, "JSON attention must be an object {\"tokens\": [...], \"attention\": [...]} or a bare "
                           "numeric array");
  ImportedArrays out;
  out.format = "json";
  auto keys_found = [&] {
    std::string list;
    for (auto it = j.begin(); it != j.end(); ++it)
      list += (list.empty() ? "" : ", ") + it.key() + " (" + describe(it.value()) + ")";
    return list.empty() ? std::string("none") : list;
  };
  if (!opt.key.empty() && !j.contains(opt.key))
    throw InputError(path, "no key '" + opt.key + "' (--key); keys found: " + keys_found());
  for (const auto* k : {&opt.tokens_key, &opt.src_key, &opt.tgt_key})
    if (!k->empty() && !j.contains(*k))
      throw InputError(path, "no token key '" + *k + "'; keys found: " + keys_found());
  std::vector<ImportedArray> vectors;  // rank-1 numeric arrays: attention only when nothing else is
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    if (const std::string axis = token_axis_for(key, opt); !axis.empty()) {
      if (!v.is_array()) throw InputError(path, "'" + key + "' must be an array of token strings");
      std::vector<std::string> toks;
      for (size_t i = 0; i < v.size(); ++i) {
        if (v[i].is_number())
          throw InputError(path, "'" + key + "'[" + std::to_string(i) +
                                     "] is a number (a token id?), not a token string: save "
                                     "tokenizer.convert_ids_to_tokens(ids), or label the axis with --tokens FILE");
        if (!v[i].is_string())
          throw InputError(path, "'" + key + "'[" + std::to_string(i) + "] is not a string");
        toks.push_back(v[i].get<std::string>());
      }
      out.tokens[axis] = std::move(toks);
      continue;
    }
    const bool wanted = opt.key.empty() || key == opt.key;
    if (v.is_array() && wanted && (!opt.key.empty() || first_leaf_numeric(v))) {
      ImportedArray a;
      a.name = key;
      a.shape = infer_shape(v);
      if (a.shape.empty() || a.shape.size() > 5)
        throw InputError(path, "'" + key + "' has " + std::to_string(a.shape.size()) +
                                   " nesting levels; attention needs 1 to 5 ([layer][head][q][k])");
      for (auto d : a.shape)
        if (d == 0) throw InputError(path, "'" + key + "' has an empty dimension");
      std::string where;
      flatten(v, a.shape, 0, a.values, where, path, key);
      (a.shape.size() == 1 ? vectors : out.arrays).push_back(std::move(a));
    } else if (v.is_string()) {
      out.metadata[key] = v.get<std::string>();
    } else if (v.is_number() || v.is_boolean()) {
      out.metadata[key] = v.dump();
    }
  }
  // A 1-D attention vector ({"tokens": [...], "attention": [...]}) when no matrix is there; beside
  // a matrix, vectors are other per-step numbers (pointer-generator's p_gens) and are left out.
  if (out.arrays.empty()) out.arrays = std::move(vectors);
  if (out.arrays.empty())
    throw InputError(path, "JSON has no attention array (a numeric array of 1 to 5 levels); keys found: " + keys_found() +
                               "; name the attention with --key NAME and tokens with --tokens-key/--src-key/--tgt-key");
  return out;
}

}  // namespace attnviz
