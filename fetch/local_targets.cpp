#include "local_targets.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>

namespace postern::fetch {

namespace {

std::string sys_error(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

/// In the names of the files postern-fetch writes in tmp/ (the middle part of a Maildir name
/// is the writer's to choose), so that a cleanup touches nothing of other programs'.
constexpr const char* tmp_marker = "_postern";

std::string rfc5322_date(std::int64_t unix_time) {
  std::time_t t = static_cast<std::time_t>(unix_time);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char text[64];
  std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  return text;
}

}  // namespace

bool maildir_place::open(const std::string& dir, std::string& error) {
  dir_ = dir;
  for (const char* sub : {"", "/tmp", "/new", "/cur"}) {
    std::string path = dir + sub;
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      error = sys_error("cannot create", path);
      return false;
    }
  }
  new_fd_ = ::open((dir + "/new").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (new_fd_ < 0) {
    error = sys_error("cannot open", dir + "/new");
    return false;
  }
  char host[HOST_NAME_MAX + 1] = {};
  ::gethostname(host, sizeof host - 1);
  for (char& c : host)
    if (c == '/' || c == ':') c = '_';
  suffix_ = std::string(tmp_marker) + "." + host;
  return true;
}

maildir_place::~maildir_place() {
  if (new_fd_ >= 0) ::close(new_fd_);
}

bool maildir_writer::begin(const std::string& dir, std::string& error) {
  own_place_.emplace();
  if (!own_place_->open(dir, error)) return false;
  return begin(*own_place_, error);
}

bool maildir_writer::begin(const maildir_place& place, std::string& error) {
  place_ = &place;
  // Unique per Maildir convention: time, pid and a counter, host name.
  static std::atomic<unsigned> counter{0};
  static const std::string pid = std::to_string(::getpid());
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  name_ = std::to_string(now.tv_sec) + ".M" + std::to_string(now.tv_nsec / 1000) + "P" + pid + "Q" +
          std::to_string(++counter) + place.suffix();
  tmp_path_ = place.dir() + "/tmp/" + name_;
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    error = sys_error("cannot create", tmp_path_);
    return false;
  }
  // Held while the file is written: a later run can tell a live writer from a killed one.
  ::flock(fd_, LOCK_EX);
  size_ = 0;
  return true;
}

bool maildir_writer::write(const std::string& bytes, std::string& error) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::write(fd_, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = sys_error("cannot write", tmp_path_);
      return false;
    }
    off += static_cast<std::size_t>(n);
  }
  size_ += bytes.size();
  return true;
}

bool maildir_writer::commit(std::string& error) {
  if (::fsync(fd_) != 0) {
    error = sys_error("cannot sync", tmp_path_);
    return false;
  }
  ::close(fd_);
  fd_ = -1;
  final_path_ = place_->dir() + "/new/" + name_ + ",S=" + std::to_string(size_);
  // The rename is durable once new/ is synced.
  if (::rename(tmp_path_.c_str(), final_path_.c_str()) != 0 || ::fsync(place_->new_fd()) != 0) {
    error = sys_error("cannot move into", place_->dir() + "/new");
    return false;
  }
  tmp_path_.clear();
  return true;
}

void maildir_writer::abort() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!tmp_path_.empty()) ::unlink(tmp_path_.c_str());
  tmp_path_.clear();
}

std::size_t maildir_writer::remove_abandoned(const std::string& dir) {
  const std::string tmp = dir + "/tmp";
  DIR* d = ::opendir(tmp.c_str());
  if (!d) return 0;
  std::size_t removed = 0;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.find(std::string(tmp_marker) + ".") == std::string::npos) continue;
    const std::string path = tmp + "/" + name;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) continue;
    // Locked: another run is writing it now. Not locked: its writer died.
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0 && ::unlink(path.c_str()) == 0) ++removed;
    ::close(fd);
  }
  ::closedir(d);
  return removed;
}

std::string mboxrd_encoder::separator(const std::string& sender, std::int64_t unix_time) {
  std::time_t t = static_cast<std::time_t>(unix_time);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char date[32];
  std::strftime(date, sizeof date, "%a %b %e %H:%M:%S %Y", &tm);
  return "From " + (sender.empty() ? std::string("MAILER-DAEMON") : sender) + " " + date + "\n";
}

void mboxrd_encoder::end_line(std::string& out) {
  if (deciding_) out += line_start_;  // a short line that never reached a decision
  out += '\n';
  line_start_.clear();
  deciding_ = true;
  at_line_start_ = true;
}

void mboxrd_encoder::encode(const std::string& bytes, std::string& out) {
  for (char c : bytes) {
    if (pending_cr_) {
      pending_cr_ = false;
      if (c == '\n') {
        end_line(out);
        continue;
      }
      // A bare CR is data.
      if (deciding_)
        line_start_ += '\r';
      else
        out += '\r';
    }
    if (c == '\r') {
      pending_cr_ = true;
      continue;
    }
    if (c == '\n') {
      end_line(out);
      continue;
    }
    at_line_start_ = false;
    if (!deciding_) {
      out += c;
      continue;
    }
    line_start_ += c;
    // Still possibly ">>>From ": wait; otherwise decide and flush.
    std::size_t quotes = line_start_.find_first_not_of('>');
    if (quotes == std::string::npos) continue;  // only '>' so far
    std::string_view rest = std::string_view(line_start_).substr(quotes);
    if (std::string_view("From ").starts_with(rest)) {
      if (rest.size() == 5) {
        out += '>';
        out += line_start_;
        deciding_ = false;
      }
      continue;
    }
    out += line_start_;
    deciding_ = false;
  }
}

void mboxrd_encoder::finish(std::string& out) {
  if (pending_cr_) {
    if (deciding_)
      line_start_ += '\r';
    else
      out += '\r';
    pending_cr_ = false;
  }
  if (!at_line_start_ || !line_start_.empty()) end_line(out);
  out += '\n';
}

std::string received_header(const std::string& server, const std::string& protocol,
                            const std::string& uid, const std::string& recipient,
                            const std::string& hostname, std::int64_t unix_time) {
  return "Received: from " + server + " by " + hostname + " (postern-fetch) with " + protocol +
         (uid.empty() ? "" : " id " + uid) + "\r\n\tfor <" + recipient + ">; " +
         rfc5322_date(unix_time) + "\r\n";
}

}  // namespace postern::fetch
