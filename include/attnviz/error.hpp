// Error types: InputError (bad file or I/O: CLI exit 2) and UsageError (bad options: CLI exit 1).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace attnviz {

// A file (or other outside input) is malformed or cannot be read/written.
// what() is one line: "<path>: <reason>".
class InputError : public std::runtime_error {
 public:
  InputError(std::string path, std::string reason)
      : std::runtime_error(path.empty() ? reason : path + ": " + reason),
        path_(std::move(path)), reason_(std::move(reason)) {}
  const std::string& path() const { return path_; }
  const std::string& reason() const { return reason_; }

 private:
  std::string path_, reason_;
};

// Builds the usual "at byte OFF: expected X, found Y" reason.
std::string at_offset(std::uint64_t offset, const std::string& expected, const std::string& found);

// The user asked for something that does not make sense (unknown option value, missing argument).
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace attnviz
