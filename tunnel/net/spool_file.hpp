#pragma once
/// A message body kept on disk while it is needed more than once.

#include <cstddef>
#include <cstdint>
#include <string>

namespace postern::net {

/// An unlinked temporary file holding a message body that must be sent more than once
/// (Bcc split); it disappears with its descriptor, so nothing is left behind on a crash.
class spool_file {
 public:
  spool_file();
  ~spool_file();
  spool_file(const spool_file&) = delete;
  spool_file& operator=(const spool_file&) = delete;
  [[nodiscard]] bool ok() const { return fd_ >= 0 && error_.empty(); }
  [[nodiscard]] const std::string& error() const { return error_; }
  bool write(const std::string& bytes);
  std::size_t read_at(std::uint64_t offset, char* buf, std::size_t len) const;
  [[nodiscard]] std::uint64_t size() const { return size_; }
  [[nodiscard]] int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::uint64_t size_ = 0;
  std::string error_;
};

}  // namespace postern::net
