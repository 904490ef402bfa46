// Atomic file output: write to a temporary file in the target's folder, then rename over the target.
#pragma once
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace attnviz {

// Calls write(tmp_path) to produce the file, then renames tmp_path to path.
// If write throws, the temporary is removed and the target is left untouched.
void write_atomically(const std::filesystem::path& path,
                      const std::function<void(const std::filesystem::path& tmp)>& write);

// Writes bytes to path atomically. Throws InputError on I/O failure.
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes);

// Reads a whole file. Throws InputError (naming the file) if it cannot be read.
std::string read_file(const std::filesystem::path& path);

}  // namespace attnviz
