// .safetensors parsing (F16/BF16/F32/F64 -> float32) with every size checked before allocation,
// and F32 serialisation.
#include <attnviz/io/atomic_file.hpp>
#include <attnviz/io/limits.hpp>
#include <attnviz/error.hpp>
#include <attnviz/io/safetensors.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>

namespace attnviz {

using json = nlohmann::json;

namespace {

constexpr std::uint64_t kMaxHeader = 100u << 20;  // the reference implementation's limit (100 MB)

std::uint64_t read_u64_le(const char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

int dtype_size(const std::string& dtype) {
  if (dtype == "F16" || dtype == "BF16") return 2;
  if (dtype == "F32") return 4;
  if (dtype == "F64") return 8;
  return 0;
}

float load_elem(const char* p, const std::string& dtype) {
  static_assert(std::endian::native == std::endian::little, "attnviz assumes a little-endian host");
  if (dtype == "F32") { float f; std::memcpy(&f, p, 4); return f; }
  if (dtype == "F64") { double d; std::memcpy(&d, p, 8); return static_cast<float>(d); }
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return dtype == "F16" ? half_to_float(h) : bfloat16_to_float(h);
}

}  // namespace

std::int64_t StTensor::numel() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

const StTensor* StFile::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = (h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1Fu;
  const std::uint32_t man = h & 0x3FFu;
  std::uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: value = man * 2^-24
      float f = std::ldexp(static_cast<float>(man), -24);
      return sign ? -f : f;
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (man << 13);  // inf / nan
  } else {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  }
  return std::bit_cast<float>(bits);
}

std::uint16_t float_to_half(float f) {
  // Round to nearest, ties to even; overflow to infinity; NaN stays NaN (quiet).
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const std::uint16_t sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t ax = x & 0x7FFFFFFFu;
  if (ax >= 0x7F800000u) return sign | (ax > 0x7F800000u ? 0x7E00u : 0x7C00u);
  if (ax >= 0x477FF000u) return sign | 0x7C00u;   // rounds to >= 65520: infinity
  if (ax < 0x38800000u) {                          // below 2^-14: subnormal half (or zero)
    // value / 2^-24, rounded to nearest even, is the subnormal mantissa (0..1024).
    const float m = std::nearbyint(std::bit_cast<float>(ax) * 16777216.0f);   // 2^24
    return sign | static_cast<std::uint16_t>(m);
  }
  std::uint32_t r = ax + 0xFFFu + ((ax >> 13) & 1u);   // round the 13 dropped bits, ties to even
  return sign | static_cast<std::uint16_t>((r - (112u << 23)) >> 13);
}

float bfloat16_to_float(std::uint16_t b) { return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16); }

bool looks_like_safetensors(const std::string& head) {
  if (head.size() < 9) return false;
  std::uint64_t n = read_u64_le(head.data());
  if (n < 2 || n > kMaxHeader) return false;
  // The header is JSON, which may start with whitespace (some writers pad or indent it).
  const size_t end = static_cast<size_t>(std::min<std::uint64_t>(head.size(), 8 + n));
  for (size_t i = 8; i < end; ++i) {
    const char c = head[i];
    if (c == '{') return true;
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') return false;
  }
  return end == head.size() && end < 8 + n;  // only whitespace as far as `head` reaches
}

namespace {

// The header (bytes[8, 8+n)) of a file of `file_size` bytes; `bytes` holds at least the header,
// and all of the file when with_data (then every tensor is converted to float32).
StFile parse_impl(const std::string& bytes, std::uint64_t file_size, const std::string& path, bool with_data) {
  if (file_size < 8)
    throw InputError(path, "truncated: " + std::to_string(file_size) +
                               " bytes, a safetensors file starts with an 8-byte header length");
  const std::uint64_t n = read_u64_le(bytes.data());
  if (n > kMaxHeader) throw InputError(path, at_offset(0, "header length <= 100 MB", std::to_string(n)));
  if (n > file_size - 8)
    throw InputError(path, at_offset(0, "header length <= " + std::to_string(file_size - 8) +
                                            " (file size - 8)", std::to_string(n)));
  // nlohmann's tree takes up to ~8x the header's text (16 bytes per value): check before parsing.
  check_array_bytes(n * 8, path, "parsing the " + human_bytes(n) + " safetensors header");
  if (n > bytes.size() - 8) throw InputError(path, "truncated header");
  const std::string header = bytes.substr(8, n);
  const std::uint64_t data_size = file_size - 8 - n;
  const char* data = bytes.data() + 8 + n;

  // Parse the header, refusing duplicate tensor names (nlohmann would silently keep the last).
  std::set<std::string> seen;
  std::string duplicate;
  json j;
  try {
    j = json::parse(header, [&](int depth, json::parse_event_t ev, json& parsed) {
      if (depth == 1 && ev == json::parse_event_t::key) {
        const std::string key = parsed.get<std::string>();
        if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
      }
      return true;
    });
  } catch (const json::exception& e) {
    throw InputError(path, "header is not valid JSON: " + std::string(e.what()));
  }
  if (!duplicate.empty()) throw InputError(path, "duplicate tensor name '" + duplicate + "' in header");
  if (!j.is_object()) throw InputError(path, "header is not a JSON object");

  StFile out;
  struct Span { std::uint64_t begin, end; std::string name; };
  std::vector<Span> spans;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) throw InputError(path, "__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          throw InputError(path, "__metadata__ value of '" + m.key() + "' is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string& why) { return InputError(path, "tensor '" + name + "': " + why); };
    if (!v.is_object()) throw bad("entry is not an object");
    if (!v.contains("dtype")) throw bad("missing dtype");
    if (!v["dtype"].is_string()) throw bad("dtype must be a string such as \"F32\", found " + v["dtype"].dump());
    if (!v.contains("shape") || !v["shape"].is_array()) throw bad("missing shape");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      throw bad("data_offsets must be [begin, end]");
    StTensor t;
    t.name = name;
    t.dtype = v["dtype"].get<std::string>();
    const int esize = dtype_size(t.dtype);
    if (esize == 0) throw bad("unsupported dtype " + t.dtype + " (supported: F16, BF16, F32, F64)");
    std::uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_integer()) throw bad("shape entries must be integers, found " + d.dump());
      if (!d.is_number_unsigned()) throw bad("negative dimension " + d.dump() + " in shape " + v["shape"].dump());
      const std::uint64_t dim = d.get<std::uint64_t>();
      if (dim != 0 && numel > std::numeric_limits<std::uint64_t>::max() / dim / 8)
        throw bad("shape " + v["shape"].dump() + " overflows");
      numel *= dim;
      t.shape.push_back(static_cast<std::int64_t>(dim));
    }
    for (const auto& o : v["data_offsets"])
      if (!o.is_number_unsigned()) throw bad("data_offsets must be non-negative integers");
    const std::uint64_t b = v["data_offsets"][0].get<std::uint64_t>();
    const std::uint64_t e = v["data_offsets"][1].get<std::uint64_t>();
    if (b > e) throw bad("data_offsets begin " + std::to_string(b) + " > end " + std::to_string(e));
    if (e > data_size)
      throw bad("data_offsets end " + std::to_string(e) + " is past the end of the data (" +
                std::to_string(data_size) + " bytes)");
    if (e - b != numel * esize)
      throw bad("shape " + v["shape"].dump() + " of " + t.dtype + " needs " + std::to_string(numel * esize) +
                " bytes, data_offsets give " + std::to_string(e - b));
    spans.push_back({b, e, name});
    t.file_offset = 8 + n + b;
    if (with_data) {
      // Sizes are now known to fit inside the file; the float32 copy must also fit the limit.
      check_array_bytes(numel * 4, path, "tensor '" + name + "' (float32)");
      t.data.resize(numel);
      for (std::uint64_t i = 0; i < numel; ++i) t.data[i] = load_elem(data + b + i * esize, t.dtype);
    }
    out.tensors.push_back(std::move(t));
  }
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i].begin < spans[i - 1].end)
      throw InputError(path, "tensors '" + spans[i - 1].name + "' and '" + spans[i].name + "' overlap");
  std::vector<StTensor> ordered;
  for (const auto& s : spans)
    for (auto& t : out.tensors)
      if (t.name == s.name) ordered.push_back(std::move(t));
  out.tensors = std::move(ordered);
  return out;
}

}  // namespace

StFile parse_safetensors(const std::string& bytes, const std::string& path) {
  return parse_impl(bytes, bytes.size(), path, true);
}

StFile read_safetensors_header(const std::filesystem::path& file) {
  const std::string path = file.string();
  std::ifstream in(file, std::ios::binary);
  if (!in) throw InputError(path, "cannot open file");
  in.seekg(0, std::ios::end);
  const std::uint64_t size = static_cast<std::uint64_t>(in.tellg());
  in.seekg(0);
  std::string head(static_cast<size_t>(std::min<std::uint64_t>(size, 8)), '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  if (size >= 8) {
    const std::uint64_t n = read_u64_le(head.data());
    if (n <= kMaxHeader && n <= size - 8) {
      head.resize(8 + n);
      in.read(head.data() + 8, static_cast<std::streamsize>(n));
      if (!in) throw InputError(path, "read error in the header");
    }
  }
  return parse_impl(head, size, path, false);
}

void safetensors_to_float(const char* src, const std::string& dtype, std::size_t n, float* dst) {
  const int esize = dtype_size(dtype);
  if (esize == 0) throw std::invalid_argument("safetensors_to_float: dtype " + dtype);
  for (std::size_t i = 0; i < n; ++i) dst[i] = load_elem(src + i * esize, dtype);
}

int safetensors_dtype_size(const std::string& dtype) { return dtype_size(dtype); }

StFile load_safetensors(const std::filesystem::path& path) {
  return parse_safetensors(read_file(path), path.string());
}

std::string serialize_safetensors(const StFile& file) {
  json header = json::object();
  std::uint64_t offset = 0;
  std::set<std::string> names;
  for (const auto& t : file.tensors) {
    if (t.name.empty() || t.name == "__metadata__") throw std::invalid_argument("bad tensor name '" + t.name + "'");
    if (!names.insert(t.name).second) throw std::invalid_argument("duplicate tensor name '" + t.name + "'");
    if (static_cast<std::int64_t>(t.data.size()) != t.numel())
      throw std::invalid_argument("tensor '" + t.name + "' data size disagrees with its shape");
    const std::uint64_t bytes = t.data.size() * 4;
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!file.metadata.empty()) header["__metadata__"] = file.metadata;
  std::string h = header.dump();
  while ((8 + h.size()) % 8 != 0) h.push_back(' ');  // keep the data 8-byte aligned, as the spec allows
  std::string out;
  out.reserve(8 + h.size() + offset);
  std::uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  out += h;
  for (const auto& t : file.tensors)
    out.append(reinterpret_cast<const char*>(t.data.data()), t.data.size() * 4);
  return out;
}

void save_safetensors(const std::filesystem::path& path, const StFile& file) {
  write_file_atomically(path, serialize_safetensors(file));
}

}  // namespace attnviz
