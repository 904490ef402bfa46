// Safe file output (unpredictable temp file in the target's folder, fsync, rename over the target)
// and whole-file reads with InputError on failure.
#pragma once
#include <filesystem>
#include <string>
#include <string_view>

namespace attnviz {

// Writes bytes to `path` so that readers see either the old file or the whole new one:
// - "-" writes to standard output (no temp file, no rename).
// - An existing path must be a regular file or a symlink to one; a folder, device, FIFO or socket
//   (-o /dev/null, -o /dev/stdout, -o somedir) is refused with InputError. A symlink is followed
//   and its target is replaced in the target's folder; the link itself stays.
// - The temp file has a random name and is opened with O_CREAT|O_EXCL|O_NOFOLLOW (a planted
//   symlink cannot redirect the write), is fsync'ed before the rename, and is removed if the
//   write fails or the process gets SIGINT/SIGTERM/SIGHUP while writing.
// - A replaced file keeps its permission bits (and, when running as root, its owner); a new file
//   gets 0666 minus the umask.
// - Missing parent folders are created (like mkdir -p), so `-o out/fig.png` needs no mkdir.
// Throws InputError naming the path and the system's reason on any failure.
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes);

// Throws the InputError write_file_atomically would for what is at `path` now (a device, FIFO,
// folder or dangling symlink), so a command can refuse before doing any work. "-" is fine.
void check_output_path(const std::filesystem::path& path);

// Reads a whole file. Throws InputError (naming the file, and its size when it does not fit in
// memory) if it cannot be read. A folder is refused; a pipe (`--gold <(cmd)`) is read to its end,
// up to the --max-mib limit (io/limits.hpp).
std::string read_file(const std::filesystem::path& path);

}  // namespace attnviz
