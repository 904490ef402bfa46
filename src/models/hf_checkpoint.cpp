// Hugging Face model directories: config.json, single or sharded safetensors headers, checked reads.
#include "models/hf_checkpoint.hpp"

#include <attnviz/error.hpp>
#include <attnviz/io/atomic_file.hpp>
#include <attnviz/io/limits.hpp>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include <cmath>
#include <fstream>

namespace attnviz::models::hf {

namespace fs = std::filesystem;

std::string shape_str(const std::vector<std::int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

namespace {

// JSON files of a model directory are small; a multi-megabyte one is not a config.
nlohmann::json read_json(const fs::path& file, std::uint64_t max_bytes) {
  const std::string path = file.string();
  std::error_code ec;
  const auto size = fs::file_size(file, ec);
  if (ec) throw InputError(path, "cannot read file (" + ec.message() + ")");
  if (size > max_bytes) throw InputError(path, fmt::format("{} bytes, more than a JSON file of a model directory may have ({})", size, max_bytes));
  try {
    return nlohmann::json::parse(read_file(file));
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path, fmt::format("not valid JSON ({})", e.what()));
  }
}

}  // namespace

Checkpoint Checkpoint::open(const fs::path& dir) {
  Checkpoint c;
  c.dir_ = dir;
  const fs::path cfg = dir / "config.json";
  if (!fs::is_regular_file(cfg)) throw InputError(dir.string(), "no config.json (not a Hugging Face model directory)");
  c.config_ = read_json(cfg, 4u << 20);
  if (!c.config_.is_object()) throw InputError(cfg.string(), "config.json is not a JSON object");

  std::vector<fs::path> shards;
  const fs::path single = dir / "model.safetensors", index = dir / "model.safetensors.index.json";
  std::map<std::string, std::string> weight_map;
  if (fs::exists(single)) {
    shards.push_back(single);
  } else if (fs::exists(index)) {
    const nlohmann::json j = read_json(index, 64u << 20);
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw InputError(index.string(), "no \"weight_map\" object");
    std::set<std::string> files;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it->is_string()) throw InputError(index.string(), fmt::format("weight_map entry '{}' is not a file name", it.key()));
      const std::string f = it->get<std::string>();
      // Shards live beside the index: a name with a folder in it is refused.
      if (f.empty() || f.find('/') != std::string::npos || f.find('\\') != std::string::npos || f == "." || f == "..")
        throw InputError(index.string(), fmt::format("weight_map entry '{}': '{}' is not a file name in this folder", it.key(), f));
      weight_map[it.key()] = f;
      files.insert(f);
    }
    if (files.empty()) throw InputError(index.string(), "weight_map is empty");
    for (const auto& f : files) shards.push_back(dir / f);
  } else {
    throw InputError(dir.string(), "neither model.safetensors nor model.safetensors.index.json (only safetensors weights are read)");
  }
  for (const auto& shard : shards) {
    if (!fs::is_regular_file(shard)) throw InputError(shard.string(), "shard named by the index is missing");
    StFile h = read_safetensors_header(shard);
    for (auto& t : h.tensors) {
      if (c.tensors_.count(t.name))
        throw InputError(shard.string(), fmt::format("tensor '{}' is also in {}", t.name, c.tensors_[t.name].file.filename().string()));
      if (!weight_map.empty()) {
        auto it = weight_map.find(t.name);
        if (it == weight_map.end() || dir / it->second != shard)
          throw InputError(shard.string(), fmt::format("tensor '{}' is not mapped to this shard by model.safetensors.index.json", t.name));
      }
      const std::string name = t.name;
      c.tensors_[name] = TensorRef{shard, std::move(t)};
    }
  }
  for (const auto& [name, f] : weight_map)
    if (!c.tensors_.count(name))
      throw InputError((dir / f).string(), fmt::format("tensor '{}' (named by the index) is not in this shard", name));
  return c;
}

const TensorRef* Checkpoint::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

std::string Checkpoint::file_of(const std::string& name) const {
  if (const TensorRef* t = find(name)) return t->file.string();
  if (fs::exists(dir_ / "model.safetensors")) return (dir_ / "model.safetensors").string();
  return (dir_ / "model.safetensors.index.json").string();
}

const nlohmann::json* Checkpoint::first_of(std::initializer_list<const char*> keys) const {
  for (const char* k : keys)
    if (config_.contains(k) && !config_[k].is_null()) return &config_[k];
  return nullptr;
}

int Checkpoint::get_int(const std::string& key, long lo, long hi) const {
  if (!config_.contains(key) || config_[key].is_null()) throw InputError(config_path(), fmt::format("missing \"{}\"", key));
  return get_int(key, lo, hi, 0);
}

int Checkpoint::get_int(const std::string& key, long lo, long hi, int fallback) const {
  if (!config_.contains(key) || config_[key].is_null()) return fallback;
  const auto& v = config_[key];
  if (!v.is_number_integer()) throw InputError(config_path(), fmt::format("\"{}\" is {}, not an integer", key, v.dump()));
  const long x = v.get<long>();
  if (x < lo || x > hi) throw InputError(config_path(), fmt::format("\"{}\" = {} is outside [{}, {}]", key, x, lo, hi));
  return static_cast<int>(x);
}

double Checkpoint::get_float(const std::string& key, double fallback) const {
  if (!config_.contains(key) || config_[key].is_null()) return fallback;
  const auto& v = config_[key];
  if (!v.is_number() || !std::isfinite(v.get<double>()))
    throw InputError(config_path(), fmt::format("\"{}\" is {}, not a finite number", key, v.dump()));
  return v.get<double>();
}

std::string Checkpoint::get_string(const std::string& key, const std::string& fallback) const {
  if (!config_.contains(key) || config_[key].is_null()) return fallback;
  const auto& v = config_[key];
  if (!v.is_string()) throw InputError(config_path(), fmt::format("\"{}\" is {}, not a string", key, v.dump()));
  return v.get<std::string>();
}

bool Checkpoint::get_bool(const std::string& key, bool fallback) const {
  if (!config_.contains(key) || config_[key].is_null()) return fallback;
  const auto& v = config_[key];
  if (!v.is_boolean()) throw InputError(config_path(), fmt::format("\"{}\" is {}, not true/false", key, v.dump()));
  return v.get<bool>();
}

void Checkpoint::check(const std::vector<Expect>& expect, const std::vector<std::string>& ignore_suffixes,
                       const std::string& family) const {
  std::set<std::string> known;
  for (const auto& e : expect) {
    known.insert(e.name);
    const TensorRef* t = find(e.name);
    if (!t) {
      if (e.optional) continue;
      throw InputError(file_of(e.name), fmt::format("missing tensor '{}' (expected shape {} for this {} config)", e.name,
                                                    shape_str(e.shape), family));
    }
    const auto& s = t->info.shape;
    const bool vec = e.shape.size() == 1;
    const bool ok = s == e.shape || (vec && s == std::vector<std::int64_t>{1, e.shape[0]});
    if (!ok)
      throw InputError(t->file.string(), fmt::format("tensor '{}': expected shape {}, found {} (config.json says {})", e.name,
                                                     shape_str(e.shape), shape_str(s), family));
  }
  for (const auto& [name, t] : tensors_) {
    if (known.count(name)) continue;
    bool ignored = false;
    for (const auto& suf : ignore_suffixes)
      if (name.size() >= suf.size() && (name.compare(name.size() - suf.size(), suf.size(), suf) == 0 ||
                                        name.compare(0, suf.size(), suf) == 0))
        ignored = true;
    if (!ignored)
      throw InputError(t.file.string(), fmt::format("unexpected tensor '{}' {} (not part of a {} checkpoint with this config)",
                                                    name, shape_str(t.info.shape), family));
  }
}

Mat Checkpoint::read(const std::string& name, long rows, long cols) const {
  const TensorRef* t = find(name);
  if (!t) throw InputError(file_of(name), fmt::format("missing tensor '{}'", name));
  const std::string path = t->file.string();
  const std::int64_t n = t->info.numel();
  if (n != static_cast<std::int64_t>(rows) * cols)
    throw InputError(path, fmt::format("tensor '{}': {} elements, expected {}x{}", name, n, rows, cols));
  const int esize = safetensors_dtype_size(t->info.dtype);
  check_array_bytes(static_cast<std::uint64_t>(n) * (4 + esize), path, fmt::format("tensor '{}'", name));
  std::string raw(static_cast<size_t>(n) * esize, '\0');
  std::ifstream in(t->file, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(t->info.file_offset));
  in.read(raw.data(), static_cast<std::streamsize>(raw.size()));
  if (!in) throw InputError(path, fmt::format("tensor '{}': read error", name));
  Mat m(rows, cols);
  safetensors_to_float(raw.data(), t->info.dtype, static_cast<size_t>(n), m.data());
  for (Eigen::Index i = 0; i < m.size(); ++i)
    if (!std::isfinite(m.data()[i]))
      throw InputError(path, fmt::format("tensor '{}': non-finite value at element {}", name, i));
  return m;
}

}  // namespace attnviz::models::hf
