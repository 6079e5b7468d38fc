#include "secret.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <openssl/mem.h>

namespace postern::conf {

secret::secret(secret&& other) noexcept : value_(std::move(other.value_)) { other.wipe(); }

secret& secret::operator=(secret&& other) noexcept {
  if (this != &other) {
    wipe();
    value_ = std::move(other.value_);
    other.wipe();
  }
  return *this;
}

void secret::wipe() {
  if (!value_.empty()) OPENSSL_cleanse(value_.data(), value_.size());
  value_.clear();
}

namespace {

std::string mode_string(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

/// First line of `text` without the line ending.
std::string first_line(const std::string& text) {
  auto end = text.find_first_of("\r\n");
  return text.substr(0, end);
}

}  // namespace

std::string check_private_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return path + ": cannot read: " + std::strerror(errno);
  if (!S_ISREG(st.st_mode)) return path + ": not a regular file";
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    return path + ": holds a secret but is accessible by group or others (mode " +
           mode_string(st.st_mode) + "); run: chmod 600 " + path;
  if (st.st_uid != 0 && st.st_uid != ::geteuid())
    return path + ": holds a secret but is owned by uid " + std::to_string(st.st_uid) +
           ", neither root nor the running user (uid " + std::to_string(::geteuid()) +
           "); run: chown " + std::to_string(::geteuid()) + " " + path;
  return {};
}

std::string check_appendable(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode)) return path + ": not a regular file";
    if (::access(path.c_str(), W_OK) != 0) return path + ": cannot write: " + std::strerror(errno);
    return {};
  }
  auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return path + ": its directory " + dir + " does not exist (create it, or fix the path)";
  if (::access(dir.c_str(), W_OK) != 0)
    return path + ": cannot create it in " + dir + ": " + std::strerror(errno);
  return {};
}

std::string check_program(const std::string& program) {
  auto usable = [](const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           ::access(path.c_str(), X_OK) == 0;
  };
  if (program.find('/') != std::string::npos) {
    struct stat st {};
    if (::stat(program.c_str(), &st) != 0)
      return "program " + program + ": " + std::strerror(errno);
    if (!usable(program)) return "program " + program + " is not an executable file";
    return {};
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
  for (std::size_t pos = 0; pos <= dirs.size();) {
    auto colon = dirs.find(':', pos);
    std::string dir =
        dirs.substr(pos, colon == std::string::npos ? std::string::npos : colon - pos);
    if (usable((dir.empty() ? "." : dir) + "/" + program)) return {};
    if (colon == std::string::npos) break;
    pos = colon + 1;
  }
  return "program " + program + " not found in PATH (" + dirs + ")";
}

std::optional<secret> read_password_file(const std::string& path, std::string* error) {
  if (auto problem = check_private_file(path); !problem.empty()) {
    *error = problem;
    return std::nullopt;
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = path + ": cannot open: " + std::strerror(errno);
    return std::nullopt;
  }
  std::string text(4096, '\0');
  ssize_t n = ::read(fd, text.data(), text.size());
  int saved = errno;
  ::close(fd);
  if (n < 0) {
    OPENSSL_cleanse(text.data(), text.size());
    *error = path + ": cannot read: " + std::strerror(saved);
    return std::nullopt;
  }
  secret value(first_line(text.substr(0, static_cast<size_t>(n))));
  OPENSSL_cleanse(text.data(), text.size());
  if (value.empty()) {
    *error = path + ": the first line is empty";
    return std::nullopt;
  }
  return value;
}

}  // namespace postern::conf
