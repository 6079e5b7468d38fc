#include "state_store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

namespace postern::fetch {

namespace {

constexpr const char* header = "postern-fetch-state 1";

std::string sys_error(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

bool write_all(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

std::string format(const std::string& uid, const uid_record& r) {
  return std::string(r.outcome == uid_outcome::delivered ? "D " : "F ") + std::to_string(r.time) +
         " " + uid + "\n";
}

}  // namespace

std::string state_store::file_name(const std::string& mailbox) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : mailbox) {
    if (std::isalnum(c) || c == '@' || c == '.' || c == '-' || c == '_') {
      out += static_cast<char>(std::tolower(c));
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out + ".state";
}

state_store::opened state_store::open(const std::string& dir, const std::string& mailbox) {
  opened result;
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    result.error = sys_error("cannot create state_dir", dir);
    return result;
  }
  std::unique_ptr<state_store> s(new state_store);
  s->dir_ = dir;
  s->path_ = dir + "/" + file_name(mailbox);
  const std::string lock_path = s->path_ + ".lock";
  s->lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (s->lock_fd_ < 0) {
    result.error = sys_error("cannot open lock file", lock_path);
    return result;
  }
  if (::flock(s->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    result.status = errno == EWOULDBLOCK ? open_status::busy : open_status::error;
    result.error = errno == EWOULDBLOCK ? "another run holds " + lock_path
                                        : sys_error("cannot lock", lock_path);
    return result;
  }
  if (!s->load(result.error)) return result;
  result.status = open_status::ok;
  result.store = std::move(s);
  return result;
}

state_store::~state_store() {
  if (journal_fd_ >= 0) ::close(journal_fd_);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the lock
}

bool state_store::load(std::string& error) {
  std::ifstream in(path_, std::ios::binary);
  if (in) {
    std::stringstream buffer;
    buffer << in.rdbuf();
    const std::string text = buffer.str();
    std::size_t pos = 0;
    int line_no = 0;
    while (pos < text.size()) {
      auto nl = text.find('\n', pos);
      if (nl == std::string::npos) break;  // a record torn by a crash: it never counted
      std::string_view line(text.data() + pos, nl - pos);
      pos = nl + 1;
      ++line_no;
      if (line_no == 1) {
        if (line != header) {
          error = path_ +
                  ":1: not a postern-fetch state file; move it away to start over "
                  "(every message on the server would be fetched again)";
          return false;
        }
        continue;
      }
      uid_record r;
      auto first = line.find(' ');
      auto second = first == std::string_view::npos ? first : line.find(' ', first + 1);
      std::string_view kind = line.substr(0, first);
      bool ok = second != std::string_view::npos && (kind == "D" || kind == "F" || kind == "X");
      if (ok) {
        auto digits = line.substr(first + 1, second - first - 1);
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), r.time);
        ok = ec == std::errc() && end == digits.data() + digits.size() && second + 1 < line.size();
      }
      if (!ok) {
        error = path_ + ":" + std::to_string(line_no) +
                ": corrupt record; fix or remove the line (a removed line means that message "
                "may be fetched again)";
        return false;
      }
      std::string uid(line.substr(second + 1));
      if (kind == "X")
        records_.erase(uid);  // forgotten
      else
        records_[uid] = {kind == "D" ? uid_outcome::delivered : uid_outcome::failed, r.time};
    }
  } else if (errno != ENOENT) {
    error = sys_error("cannot read state file", path_);
    return false;
  }
  // Start from a compact file (it also drops a torn last record) and append to it.
  return compact(error);
}

bool state_store::append(const std::string& line, std::string& error) {
  if (!write_all(journal_fd_, line) || ::fdatasync(journal_fd_) != 0) {
    error = sys_error("cannot write state file", path_);
    return false;
  }
  return true;
}

const uid_record* state_store::find(const std::string& uid) const {
  auto it = records_.find(uid);
  return it == records_.end() ? nullptr : &it->second;
}

bool state_store::record(const std::string& uid, uid_outcome outcome, std::int64_t time,
                         std::string& error) {
  uid_record r{outcome, time};
  if (!append(format(uid, r), error)) return false;
  records_[uid] = r;
  return true;
}

bool state_store::forget(const std::vector<std::string>& uids, std::string& error) {
  std::string lines;
  for (const auto& uid : uids)
    if (records_.count(uid)) lines += "X 0 " + uid + "\n";
  if (lines.empty()) return true;
  if (!append(lines, error)) return false;
  for (const auto& uid : uids) records_.erase(uid);
  return true;
}

bool state_store::compact(std::string& error) {
  std::string text = std::string(header) + "\n";
  for (const auto& [uid, r] : records_) text += format(uid, r);
  const std::string tmp = path_ + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = sys_error("cannot write", tmp);
    return false;
  }
  bool ok = write_all(fd, text) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path_.c_str()) != 0) {
    error = sys_error("cannot write state file", path_);
    ::unlink(tmp.c_str());
    return false;
  }
  int dir_fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);  // the rename itself must survive a crash
    ::close(dir_fd);
  }
  if (journal_fd_ >= 0) ::close(journal_fd_);
  journal_fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (journal_fd_ < 0) {
    error = sys_error("cannot open state file", path_);
    return false;
  }
  return true;
}

}  // namespace postern::fetch
