#pragma once
/// Secrets (passwords, private keys' files): read with permission checks, never printed,
/// wiped from memory when dropped.

#include <optional>
#include <string>
#include <vector>

namespace postern::conf {

/// A secret value. It has no operator<< and no to_string: the only way to the bytes is
/// reveal(), so a secret cannot reach a log line by accident. Wiped on destruction.
class secret {
 public:
  secret() = default;
  explicit secret(std::string value) : value_(std::move(value)) {}
  secret(const secret&) = delete;
  secret& operator=(const secret&) = delete;
  secret(secret&& other) noexcept;
  secret& operator=(secret&& other) noexcept;
  ~secret() { wipe(); }

  [[nodiscard]] const std::string& reveal() const { return value_; }
  [[nodiscard]] bool empty() const { return value_.empty(); }
  void wipe();

 private:
  std::string value_;
};

/// Checks that a file holding a secret is private: a regular file, not readable or writable by
/// group or others, owned by the running user or root. Returns "" when it is, else the problem
/// and the fix (e.g. "... is readable by others (mode 0644); run: chmod 600 FILE").
std::string check_private_file(const std::string& path);

/// "" when a file such as an audit log can be appended to at `path` (it exists and is
/// writable, or its directory exists and is); else the problem.
std::string check_appendable(const std::string& path);

/// "" when `program` (a path, or a name looked up in PATH) exists and may be run; else the
/// problem, e.g. "program pass not found in PATH".
std::string check_program(const std::string& program);

/// Reads the first line of a private password file (see check_private_file).
std::optional<secret> read_password_file(const std::string& path, std::string* error);

}  // namespace postern::conf
