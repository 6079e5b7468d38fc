#include "spool_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace postern::net {

spool_file::spool_file() {
  const char* dir = std::getenv("TMPDIR");
  std::string path = dir && *dir ? dir : "/tmp";
  fd_ = ::open(path.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd_ < 0) error_ = "spool file in " + path + ": " + std::strerror(errno);
}

spool_file::~spool_file() {
  if (fd_ >= 0) ::close(fd_);
}

bool spool_file::write(const std::string& bytes) {
  std::size_t off = 0;
  while (fd_ >= 0 && off < bytes.size()) {
    ssize_t n = ::write(fd_, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error_ = std::string("spool file: ") + std::strerror(errno);
      return false;
    }
    off += static_cast<std::size_t>(n);
  }
  size_ += bytes.size();
  return fd_ >= 0;
}

std::size_t spool_file::read_at(std::uint64_t offset, char* buf, std::size_t len) const {
  ssize_t n;
  do n = ::pread(fd_, buf, len, static_cast<off_t>(offset));
  while (n < 0 && errno == EINTR);
  return n > 0 ? static_cast<std::size_t>(n) : 0;
}

}  // namespace postern::net
