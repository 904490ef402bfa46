// Generic .safetensors reading and writing (records and model files both use it).
//
// Layout: 8-byte little-endian u64 N, then N bytes of JSON header
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "string value", ...}}
// then the raw little-endian data; offsets are relative to the byte after the header.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace attnviz {

struct StTensor {
  std::string name;
  std::string dtype;               // dtype as stored in the file (F16, BF16, F32, F64, ...)
  std::vector<std::int64_t> shape;
  std::vector<float> data;         // converted to float32, row-major (empty from read_safetensors_header)
  std::uint64_t file_offset = 0;   // byte offset of the tensor's stored data in the file
  std::int64_t numel() const;
};

struct StFile {
  std::vector<StTensor> tensors;   // in data-offset order
  std::map<std::string, std::string> metadata;
  const StTensor* find(const std::string& name) const;
};

// Parses a safetensors image held in memory; `path` is only used in error messages.
// Every size is checked against the buffer before anything is allocated.
StFile parse_safetensors(const std::string& bytes, const std::string& path);
StFile load_safetensors(const std::filesystem::path& path);
// Reads and checks only the header (names, dtypes, shapes, offsets against the file size): the
// tensors come back without data, with file_offset set, for loaders that check names and shapes
// before they read anything large.
StFile read_safetensors_header(const std::filesystem::path& path);
// n stored elements of `dtype` (F16, BF16, F32, F64) at src to float32; bytes per element.
void safetensors_to_float(const char* src, const std::string& dtype, std::size_t n, float* dst);
int safetensors_dtype_size(const std::string& dtype);   // 0 for an unsupported dtype

// Serialises as F32 (tensors keep their order). Names must be unique and non-empty.
std::string serialize_safetensors(const StFile& file);
void save_safetensors(const std::filesystem::path& path, const StFile& file);  // atomic

// True if the bytes look like a safetensors file (plausible header length and '{').
bool looks_like_safetensors(const std::string& head);

// IEEE half and bfloat16 to float (used by the importers too).
float half_to_float(std::uint16_t h);
float bfloat16_to_float(std::uint16_t b);
// Float to IEEE half, round to nearest even (infinity above 65504, NaN kept).
std::uint16_t float_to_half(float f);

}  // namespace attnviz
