// .npz archives (numpy's np.savez / np.savez_compressed): a ZIP of .npy members, stored or deflated.
#pragma once
#include <attnviz/io/npy.hpp>

#include <string>
#include <vector>

namespace attnviz {

struct NpzMember {
  std::string name;  // member name without the ".npy" suffix ("encoder_attentions", "tokens", ...)
  NpyArray array;
};

// True if the bytes start with a ZIP local file header or an empty archive's end record.
bool looks_like_zip(const std::string& head);

struct NpzSkipped {
  std::string name;    // member name without ".npy"
  std::string reason;  // "dtype '|O': pickled object array: attnviz never unpickles; ..."
};

// Parses every .npy member of a ZIP image held in memory (other members are skipped); `path` only
// names the file in errors. Members of a dtype attnviz does not read (object, integer, ...) are
// listed in *skipped when it is given and some member could be read; otherwise they are an
// InputError naming each member and what to save instead. Reads the central directory (ZIP64 extensions included), checks each
// member's offsets, sizes, method (0 stored, 8 deflated) and CRC-32, and checks a member's npy
// header against its declared size before inflating it, so no allocation exceeds what the
// archive can really produce, and that no member over the --max-mib limit is inflated at all.
std::vector<NpzMember> parse_npz(const std::string& bytes, const std::string& path,
                                 std::vector<NpzSkipped>* skipped = nullptr);

}  // namespace attnviz
