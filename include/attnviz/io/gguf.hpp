// GGUF (v2, v3) reader: header, typed metadata, tensor infos, and tensors dequantized to float32.
//
// Layout (ggml docs/gguf.md), all little-endian:
//   "GGUF" u32 version u64 n_tensors u64 n_kv
//   n_kv x { string key, u32 value_type, value }         string = u64 length + bytes (no NUL)
//   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
//   padding to general.alignment (default 32), then the tensor data; offsets are relative to it.
// ne[0] is the contiguous dimension: ne = [in, out] is a row-major [out][in] matrix.
#pragma once
#include <attnviz/tensor.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace attnviz {

// Tensor element types attnviz reads (ggml's numbering). Other types are refused with their name.
enum class GgmlType : std::uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, BF16 = 30
};

// Metadata value types (gguf_type).
enum class GgufValueType : std::uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12
};

const char* ggml_type_name(std::uint32_t type);        // "F32", "Q4_K", ... ("type 99" when unknown)
const char* gguf_value_type_name(std::uint32_t type);  // "uint8", ..., "array"

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<std::uint64_t> ne;   // ne[0] contiguous
  std::uint64_t offset = 0;        // absolute in the file
  std::uint64_t nbytes = 0;
  std::uint64_t numel() const;
};

// One metadata entry; the value stays in the file image and is decoded when asked for.
struct GgufKv {
  std::string key;
  GgufValueType type = GgufValueType::UINT8;
  GgufValueType elem_type = GgufValueType::UINT8;   // arrays only
  std::uint64_t count = 0;                          // arrays only: number of elements
  std::uint64_t value_offset = 0;                   // absolute offset of the value (of the first element for arrays)
};

class GgufFile {
 public:
  // Memory-maps the file and validates everything (header, every metadata value, tensor infos, tensor
  // data ranges) before anything proportional to a claimed count is allocated. Throws InputError
  // "<path>: <what>, at offset N".
  static GgufFile open(const std::filesystem::path& path);
  // The same on an image held in memory (tests, the fuzzer); `path` names it in messages.
  static GgufFile parse(std::string bytes, const std::filesystem::path& path);

  std::uint32_t version() const { return version_; }
  const std::filesystem::path& path() const { return path_; }
  std::uint64_t file_size() const;
  std::uint32_t alignment() const { return alignment_; }
  std::uint64_t data_offset() const { return data_offset_; }   // start of the tensor data section

  bool has(const std::string& key) const;
  const GgufKv* kv(const std::string& key) const;              // nullptr when absent
  std::string get_string(const std::string& key) const;        // throws InputError if missing / wrong type
  std::string get_string(const std::string& key, const std::string& fallback) const;
  std::int64_t get_int(const std::string& key) const;          // any integer type (and bool)
  std::int64_t get_int(const std::string& key, std::int64_t fallback) const;
  double get_float(const std::string& key) const;              // f32/f64 (and integers)
  double get_float(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<float> get_float_array(const std::string& key) const;       // f32/f64/integer arrays
  std::vector<std::int64_t> get_int_array(const std::string& key) const;  // integer/bool arrays
  std::vector<std::string> keys() const;                        // in file order
  const std::vector<GgufKv>& entries() const { return kvs_; }
  // A short readable rendering of a value ("llama", 512, [string x 512] "<unk>", "<s>", ...).
  std::string describe_value(const std::string& key, std::size_t max_chars = 80) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find(const std::string& name) const;   // nullptr when absent
  // The raw bytes of a tensor (inside the mapped file; valid while this GgufFile or a copy lives).
  const std::uint8_t* tensor_bytes(const GgufTensorInfo& t) const;
  // All elements dequantized to float32, in file order (ne[0] fastest).
  std::vector<float> dequantize(const GgufTensorInfo& t) const;
  // Dequantized to float32 as a row-major matrix: cols = ne[0] (the contiguous dimension), rows = the
  // product of the other ne. So blk.N.attn_k.weight with ne=[64,32] is Mat [32, 64] = torch's [out, in].
  // Throws InputError naming the tensor when absent or when expect_rows/expect_cols (>=0) do not match.
  Mat matrix(const std::string& name, long expect_rows = -1, long expect_cols = -1) const;

 private:
  struct Storage;
  std::shared_ptr<const Storage> storage_;
  const std::uint8_t* data_ = nullptr;
  std::uint64_t size_ = 0;
  std::filesystem::path path_;
  std::uint32_t version_ = 0;
  std::uint32_t alignment_ = 32;
  std::uint64_t data_offset_ = 0;
  std::vector<GgufKv> kvs_;
  std::unordered_map<std::string, std::size_t> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, std::size_t> tensor_index_;

  void parse_all();
  const GgufKv& need(const std::string& key) const;
  [[noreturn]] void fail(const std::string& what, std::uint64_t offset) const;
};

// True when the bytes start with the GGUF magic.
bool looks_like_gguf(const std::string& head);

// Bytes per block and elements per block of a supported tensor type (F32: 4 and 1; Q8_0: 34 and 32;
// the K-quants: super-blocks of 256 elements in 84 (Q2_K), 110 (Q3_K), 144 (Q4_K), 176 (Q5_K) or
// 210 (Q6_K) bytes).
std::uint64_t ggml_block_bytes(GgmlType t);
std::uint64_t ggml_block_elems(GgmlType t);
// Dequantizes n elements (a multiple of the block size) from src into dst.
void ggml_dequantize(GgmlType t, const std::uint8_t* src, float* dst, std::uint64_t n);
// Quantizes n floats (a multiple of 32) to Q8_0 blocks as llama.cpp's reference quantizer does:
// d = max|x| / 127 stored as f16, q = round(x / d). Used by `bench lm` for its Q8_0 rows and by tests.
std::vector<std::uint8_t> ggml_quantize_q8_0(const float* src, std::uint64_t n);

// The text `attnviz inspect` prints for a GGUF file: architecture, sizes, tensor types, parameters,
// tokenizer, then one line per tensor (name, type, shape).
std::string describe_gguf(const GgufFile& f);

}  // namespace attnviz
