// .npy arrays (format 1.0/2.0/3.0): float16/32/64 in either byte order, C or Fortran order, and
// numpy unicode string arrays (<U..), parsed from memory with every size checked before allocation.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace attnviz {

struct NpyArray {
  std::vector<std::int64_t> shape;
  std::string descr;                 // dtype as written in the header: "<f4", ">f8", "<U7", ...
  bool is_string = false;            // a unicode array: `strings` holds it, `values` is empty
  std::vector<float> values;         // float arrays converted to float32, C (row-major) order
  std::vector<std::string> strings;  // unicode arrays as UTF-8, C order, trailing NULs stripped
  std::int64_t numel() const;
};

// True if the bytes start with the .npy magic "\x93NUMPY".
bool looks_like_npy(const std::string& head);

// Parses a whole .npy image; `path` only names the file in errors (InputError).
// Refuses: wrong magic or version, a header that is not numpy's dict literal, structured or
// object dtypes, integer dtypes (each with advice on what to save instead), negative dimensions,
// sizes whose product overflows, arrays over the --max-mib limit (io/limits.hpp), and data
// shorter or longer than the shape needs. Nothing proportional to the shape is allocated before
// the shape has been checked against the bytes actually present.
NpyArray parse_npy(const std::string& bytes, const std::string& path);

// Only the header (dtype, order, shape) and the number of data bytes it implies; used by the
// .npz reader to check a member's declared size before inflating it.
struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<std::int64_t> shape;
  std::uint64_t header_bytes = 0;  // magic + version + length + dict
  std::uint64_t data_bytes = 0;    // numel * itemsize (0 when the dtype is not supported)
  bool supported_dtype = true;     // false: object, integer, ... (npy_dtype_advice says what to do)
};
// `prefix` may be only the first bytes of the file (enough to hold the header).
NpyHeader parse_npy_header(const std::string& prefix, const std::string& path);

// True if attnviz reads this dtype (float16/32/64/128 either byte order, unicode <U..).
bool npy_dtype_supported(const std::string& descr);
// What to tell the user about a dtype it does not read ("pickled object array: attnviz never
// unpickles; save a float array ...").
std::string npy_dtype_advice(const std::string& descr);

// True if s is well-formed UTF-8 (no overlong forms, surrogates or code points > 0x10FFFF).
bool valid_utf8(const std::string& s);

}  // namespace attnviz
