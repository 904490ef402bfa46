// AttentionRecord <-> .safetensors: tensors stay tensors; tokens, axes, image layout and metadata
// become JSON strings in __metadata__ (layout documented in the README).
#include <attnviz/io/atomic_file.hpp>
#include <attnviz/error.hpp>
#include <attnviz/record/record.hpp>
#include <attnviz/io/safetensors.hpp>

#include <nlohmann/json.hpp>

#include <cctype>
#include <set>

namespace attnviz {

using json = nlohmann::json;

namespace {

constexpr const char* kFormat = "attnviz.record/1";

std::string prefix_of(size_t i, size_t n) { return n == 1 ? "" : "s" + std::to_string(i) + "/"; }

StTensor to_st(const std::string& name, const AttentionTensor& t) {
  StTensor s;
  s.name = name;
  s.dtype = "F32";
  s.shape = {t.heads, t.queries, t.keys};
  s.data = t.data;
  return s;
}

AttentionTensor from_st(const StTensor& s, const std::string& name, const std::string& path) {
  if (s.shape.size() != 3)
    throw InputError(path, "tensor '" + s.name + "': expected shape [heads, queries, keys], found " +
                               std::to_string(s.shape.size()) + " dimensions");
  for (auto d : s.shape)
    if (d <= 0 || d > (1 << 24)) throw InputError(path, "tensor '" + s.name + "': dimension out of range");
  AttentionTensor t;
  t.name = name;
  t.heads = static_cast<int>(s.shape[0]);
  t.queries = static_cast<int>(s.shape[1]);
  t.keys = static_cast<int>(s.shape[2]);
  t.data = s.data;
  return t;
}

json parse_meta_json(const std::map<std::string, std::string>& meta, const std::string& key,
                     const std::string& path) {
  auto it = meta.find(key);
  if (it == meta.end()) return json();
  try {
    return json::parse(it->second);
  } catch (const json::exception& e) {
    throw InputError(path, "__metadata__ '" + key + "' is not valid JSON: " + e.what());
  }
}

}  // namespace

StFile records_to_safetensors(const std::vector<AttentionRecord>& records) {
  StFile f;
  f.metadata["attnviz.format"] = kFormat;
  if (records.size() != 1) f.metadata["attnviz.samples"] = std::to_string(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    const AttentionRecord& r = records[i];
    const std::string p = prefix_of(i, records.size());
    json axes = json::object();
    json tensor_names = json::array();
    for (const auto& t : r.tensors) {
      f.tensors.push_back(to_st(p + t.name, t));
      axes[t.name] = {t.query_axis, t.key_axis};
      tensor_names.push_back(t.name);
    }
    json grads = json::array(), rel = json::array();
    for (const auto& g : r.gradients) {
      f.tensors.push_back(to_st(p + "grad:" + g.name, g));
      grads.push_back(g.name);
    }
    for (const auto& g : r.relevance) {
      f.tensors.push_back(to_st(p + "rel:" + g.name, g));
      rel.push_back(g.name);
    }
    if (r.image) {
      StTensor img;
      img.name = p + "image";
      img.dtype = "F32";
      img.shape = {r.image->height, r.image->width};
      img.data = r.image->pixels;
      f.tensors.push_back(std::move(img));
      f.metadata[p + "attnviz.image"] = json{{"tensor", "image"},
                                            {"patch_grid", {r.image->patch_rows, r.image->patch_cols}},
                                            {"prefix_tokens", r.image->prefix_tokens}}.dump();
    }
    f.metadata[p + "attnviz.tensors"] = tensor_names.dump();
    f.metadata[p + "attnviz.axes"] = axes.dump();
    f.metadata[p + "attnviz.tokens"] = json(r.tokens).dump();
    if (!grads.empty()) f.metadata[p + "attnviz.gradients"] = grads.dump();
    if (!rel.empty()) f.metadata[p + "attnviz.relevance"] = rel.dump();
    for (const auto& [k, v] : r.metadata) f.metadata[p + k] = v;
  }
  return f;
}

std::vector<AttentionRecord> records_from_safetensors(const StFile& f, const std::string& path) {
  size_t n = 1;
  if (auto it = f.metadata.find("attnviz.samples"); it != f.metadata.end()) {
    try {
      n = std::stoul(it->second);
    } catch (...) {
      throw InputError(path, "__metadata__ attnviz.samples is not a number: '" + it->second + "'");
    }
    if (n == 0 || n > f.tensors.size() + 1)
      throw InputError(path, "__metadata__ attnviz.samples = " + it->second + " does not match the tensors");
  }
  const bool ours = f.metadata.count("attnviz.format") > 0;
  std::vector<AttentionRecord> out(n);
  for (size_t i = 0; i < n; ++i) {
    AttentionRecord& r = out[i];
    const std::string p = prefix_of(i, n);
    try {
      json tokens = parse_meta_json(f.metadata, p + "attnviz.tokens", path);
      if (!tokens.is_null()) r.tokens = tokens.get<std::map<std::string, std::vector<std::string>>>();
      json axes = parse_meta_json(f.metadata, p + "attnviz.axes", path);
      json image = parse_meta_json(f.metadata, p + "attnviz.image", path);
      json grads = parse_meta_json(f.metadata, p + "attnviz.gradients", path);
      json rels = parse_meta_json(f.metadata, p + "attnviz.relevance", path);
      std::set<std::string> grad_names, rel_names;
      if (grads.is_array())
        for (auto& g : grads) grad_names.insert(g.get<std::string>());
      if (rels.is_array())
        for (auto& g : rels) rel_names.insert(g.get<std::string>());
      const std::string image_name = image.is_object() ? p + image.value("tensor", std::string("image")) : "";
      for (const auto& s : f.tensors) {
        if (s.name.compare(0, p.size(), p) != 0) continue;
        std::string local = s.name.substr(p.size());
        if (!image_name.empty() && s.name == image_name) {
          if (s.shape.size() != 2 || s.shape[0] <= 0 || s.shape[1] <= 0)
            throw InputError(path, "image tensor '" + s.name + "' must be [height, width]");
          RecordImage img;
          img.height = static_cast<int>(s.shape[0]);
          img.width = static_cast<int>(s.shape[1]);
          img.pixels = s.data;
          auto grid = image.value("patch_grid", json::array({0, 0}));
          img.patch_rows = grid.at(0).get<int>();
          img.patch_cols = grid.at(1).get<int>();
          img.prefix_tokens = image.value("prefix_tokens", 0);
          r.image = std::move(img);
          continue;
        }
        if (local.rfind("grad:", 0) == 0 && grad_names.count(local.substr(5))) {
          r.gradients.push_back(from_st(s, local.substr(5), path));
          continue;
        }
        if (local.rfind("rel:", 0) == 0 && rel_names.count(local.substr(4))) {
          r.relevance.push_back(from_st(s, local.substr(4), path));
          continue;
        }
        // Foreign safetensors: a 2-D tensor is one head; other ranks are left to the importers.
        if (!ours && s.shape.size() == 2) {
          StTensor s3 = s;
          s3.shape.insert(s3.shape.begin(), 1);
          r.tensors.push_back(from_st(s3, local, path));
          continue;
        }
        AttentionTensor t = from_st(s, local, path);
        if (axes.is_object() && axes.contains(local)) {
          const json& a = axes[local];
          if (a.is_array() && a.size() == 2) {
            t.query_axis = a[0].get<std::string>();
            t.key_axis = a[1].get<std::string>();
          }
        }
        r.tensors.push_back(std::move(t));
      }
      // Keep the saved order of attention tensors (safetensors orders by offset, which matches).
      for (const auto& [k, v] : f.metadata) {
        if (k.compare(0, p.size(), p) != 0) continue;
        std::string local = k.substr(p.size());
        if (local.rfind("attnviz.", 0) == 0) continue;
        if (n > 1 && p.empty()) continue;
        if (n == 1 && local.size() > 1 && local[0] == 's' && std::isdigit(static_cast<unsigned char>(local[1])) &&
            local.find('/') != std::string::npos)
          continue;
        r.metadata[local] = v;
      }
    } catch (const nlohmann::json::exception& e) {
      throw InputError(path, "record metadata has the wrong structure: " + std::string(e.what()));
    }
    r.validate(path);
  }
  return out;
}

void save_records(const std::filesystem::path& path, const std::vector<AttentionRecord>& records) {
  for (const auto& r : records) r.validate(path.string());
  save_safetensors(path, records_to_safetensors(records));
}

void save_record(const std::filesystem::path& path, const AttentionRecord& record) {
  save_records(path, std::vector<AttentionRecord>{record});
}

std::vector<AttentionRecord> load_records(const std::filesystem::path& path) {
  return records_from_safetensors(load_safetensors(path), path.string());
}

AttentionRecord load_record(const std::filesystem::path& path, int sample) {
  auto all = load_records(path);
  if (sample < 0 || sample >= static_cast<int>(all.size()))
    throw InputError(path.string(), "has " + std::to_string(all.size()) + " samples, --sample " +
                                        std::to_string(sample) + " is out of range");
  return std::move(all[sample]);
}

}  // namespace attnviz
