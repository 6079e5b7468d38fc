#include "state_store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <functional>

namespace postern::fetch {

namespace {

/// Version 2 adds each message's size: "D <time> <size> <uid>" ("-" when unknown); version 3
/// its digest, "D <time> <size> <digest> <uid>" ("-" when unknown), and named values,
/// "M <name> <value>".
constexpr std::string_view header_v1 = "postern-fetch-state 1";
constexpr std::string_view header_v2 = "postern-fetch-state 2";
constexpr std::string_view header_v3 = "postern-fetch-state 3";

/// The outcome of a record that forgets its UID; such records are dropped at load.
constexpr auto forgotten = static_cast<uid_outcome>(0xff);

enum class read_status { done, stopped, failed };

/// Calls `each` for every complete line of `fd`, read in pieces (the file is never held
/// whole) until it returns false; `torn` gets what follows the last line end.
read_status for_each_line(int fd, const std::function<bool(std::string_view)>& each,
                          std::string& torn) {
  std::string pending;  // a line split by the end of a piece
  char chunk[65536];
  for (ssize_t n; (n = ::read(fd, chunk, sizeof chunk)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return read_status::failed;
    std::string_view piece(chunk, static_cast<std::size_t>(n));
    for (auto nl = piece.find('\n'); nl != std::string_view::npos; nl = piece.find('\n')) {
      bool go_on;
      if (pending.empty()) {
        go_on = each(piece.substr(0, nl));
      } else {
        pending.append(piece.substr(0, nl));
        go_on = each(pending);
        pending.clear();
      }
      if (!go_on) return read_status::stopped;
      piece.remove_prefix(nl + 1);
    }
    pending.append(piece);
  }
  torn = std::move(pending);
  return read_status::done;
}

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

char kind_letter(uid_outcome o) {
  switch (o) {
    case uid_outcome::delivered: return 'D';
    case uid_outcome::failed: return 'F';
    case uid_outcome::seen: return 'S';
  }
  return 'D';
}

void format(std::string& out, std::string_view uid, const uid_record& r) {
  out += kind_letter(r.outcome);
  out += ' ';
  out += std::to_string(r.time);
  out += ' ';
  out += r.size < 0 ? std::string("-") : std::to_string(r.size);
  out += ' ';
  out += r.digest.empty() ? std::string("-") : r.digest;
  out += ' ';
  out += uid;
  out += '\n';
}

bool is_digest(std::string_view hex) {
  return hex.size() == 64 && std::all_of(hex.begin(), hex.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

int hex_value(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

bool parse_number(std::string_view text, std::int64_t& value) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size();
}

/// One line of a state file: a record, or (nullopt record) a forgotten UID.
struct parsed_line {
  std::string_view uid;
  std::optional<uid_record> record;
};

std::optional<parsed_line> parse_line(std::string_view line, int version) {
  const bool v2 = version >= 2;
  std::vector<std::string_view> words;
  std::size_t pos = 0;
  const std::size_t fields = version >= 3 ? 4 : v2 ? 3 : 2;  // before the UID, the line's rest
  while (words.size() < fields) {
    auto space = line.find(' ', pos);
    if (space == std::string_view::npos) return std::nullopt;
    words.push_back(line.substr(pos, space - pos));
    pos = space + 1;
  }
  parsed_line out{line.substr(pos), uid_record{}};
  if (out.uid.empty() || words[0].size() != 1) return std::nullopt;
  uid_record& r = *out.record;
  if (!parse_number(words[1], r.time)) return std::nullopt;
  if (v2 && words[2] != "-" && !parse_number(words[2], r.size)) return std::nullopt;
  if (version >= 3 && words[3] != "-") {
    if (!is_digest(words[3])) return std::nullopt;
    r.digest = std::string(words[3]);
  }
  switch (words[0][0]) {
    case 'D': r.outcome = uid_outcome::delivered; break;
    case 'F': r.outcome = uid_outcome::failed; break;
    case 'S':
      if (!v2) return std::nullopt;
      r.outcome = uid_outcome::seen;
      break;
    case 'X': out.record.reset(); break;
    default: return std::nullopt;
  }
  return out;
}

}  // namespace

std::string state_store::file_name(const std::string& mailbox, const std::string& scope) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : scope.empty() ? mailbox : mailbox + " " + scope) {
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

state_store::opened state_store::open(const std::string& dir, const std::string& mailbox,
                                      const std::string& scope) {
  opened result;
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    result.error = sys_error("cannot create state_dir", dir);
    return result;
  }
  std::unique_ptr<state_store> s(new state_store);
  s->dir_ = dir;
  s->path_ = dir + "/" + file_name(mailbox, scope);
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
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) {
      error = sys_error("cannot read state file", path_);
      return false;
    }
    // No file yet, and none is written until something is recorded or a run completes: a
    // run that stops to ask what to do with the mail on the server leaves no trace.
    return true;
  }
  existed_ = true;
  std::vector<stored> all;
  int line_no = 0;
  int version = 0;
  bool needs_rewrite = false;
  const auto take = [&](std::string_view line) {
    if (++line_no > 1) return add_record(line, line_no, version, all, error);
    if (line != header_v1 && line != header_v2 && line != header_v3) {
      error = path_ +
              ":1: not a postern-fetch state file; move it away to start over "
              "(every message on the server would be fetched again)";
      return false;
    }
    version = line == header_v3 ? 3 : line == header_v2 ? 2 : 1;
    needs_rewrite = version != 3;
    return true;
  };
  std::string torn;
  const read_status read = for_each_line(fd, take, torn);
  if (read == read_status::failed) error = sys_error("cannot read state file", path_);
  ::close(fd);
  if (read != read_status::done) return false;
  if (!torn.empty()) needs_rewrite = true;  // a record torn by a crash: it never counted
  if (keep_latest(all)) needs_rewrite = true;
  sorted_ = std::move(all);
  if (needs_rewrite) return compact(error);
  journal_fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (journal_fd_ < 0) {
    error = sys_error("cannot open state file", path_);
    return false;
  }
  return true;
}

bool state_store::add_record(std::string_view line, int line_no, int version,
                             std::vector<stored>& all, std::string& error) {
  if (version >= 3 && line.starts_with("M ")) {
    const std::string_view rest = line.substr(2);
    const auto space = rest.find(' ');
    if (space == 0 || space == std::string_view::npos) {
      error = path_ + ":" + std::to_string(line_no) + ": corrupt named value; fix or remove it";
      return false;
    }
    meta_[std::string(rest.substr(0, space))] = std::string(rest.substr(space + 1));
    return true;
  }
  auto parsed = parse_line(line, version);
  if (!parsed || parsed->uid.size() > 0xffff) {
    error = path_ + ":" + std::to_string(line_no) +
            ": corrupt record; fix or remove the line (a removed line means that message "
            "may be fetched again)";
    return false;
  }
  // Each UID goes straight into the arena, in file order: its offset says which of a UID's
  // records came last.
  const uid_record r = parsed->record.value_or(uid_record{});
  const std::uint32_t offset = store_key(parsed->uid, r.digest);
  all.push_back({offset, static_cast<std::uint16_t>(parsed->uid.size()),
                 parsed->record ? r.outcome : forgotten, !r.digest.empty(), r.time, r.size});
  return true;
}

std::uint32_t state_store::store_key(std::string_view uid, const std::string& digest) {
  const auto offset = static_cast<std::uint32_t>(arena_.size());
  arena_ += uid;
  for (std::size_t i = 0; i + 1 < digest.size(); i += 2)
    arena_ += static_cast<char>(hex_value(digest[i]) * 16 + hex_value(digest[i + 1]));
  return offset;
}

uid_record state_store::record_of(const stored& s) const {
  uid_record r{s.outcome, s.time, s.size, {}};
  if (s.has_digest) {
    static const char hex[] = "0123456789abcdef";
    const std::string_view raw = std::string_view(arena_).substr(s.offset + s.length, 32);
    r.digest.reserve(64);
    for (unsigned char c : raw) {
      r.digest += hex[c >> 4];
      r.digest += hex[c & 15];
    }
  }
  return r;
}

bool state_store::keep_latest(std::vector<stored>& all) const {
  // By UID, then by position in the file: the last of each run of equal UIDs is the one.
  std::sort(all.begin(), all.end(), [this](const stored& a, const stored& b) {
    const int c = key(a).compare(key(b));
    return c != 0 ? c < 0 : a.offset < b.offset;
  });
  bool dropped = false;
  std::size_t kept = 0;
  for (std::size_t i = 0; i < all.size(); ++i) {
    const bool superseded = i + 1 < all.size() && key(all[i + 1]) == key(all[i]);
    if (superseded || all[i].outcome == forgotten) {
      dropped = true;
      continue;
    }
    all[kept++] = all[i];
  }
  all.resize(kept);
  return dropped;
}

bool state_store::append(const std::string& line, std::string& error) {
  if (journal_fd_ < 0 && !compact(error)) return false;  // the first record of a new mailbox
  if (!write_all(journal_fd_, line) || ::fdatasync(journal_fd_) != 0) {
    error = sys_error("cannot write state file", path_);
    return false;
  }
  return true;
}

std::optional<uid_record> state_store::find(std::string_view uid) const {
  if (!changed_.empty())
    if (auto it = changed_.find(std::string(uid)); it != changed_.end()) return it->second;
  auto it = std::lower_bound(sorted_.begin(), sorted_.end(), uid,
                             [this](const stored& s, std::string_view k) { return key(s) < k; });
  if (it == sorted_.end() || key(*it) != uid) return std::nullopt;
  return record_of(*it);
}

std::size_t state_store::size() const {
  std::size_t n = sorted_.size();
  for (const auto& [uid, rec] : changed_) {
    auto it = std::lower_bound(sorted_.begin(), sorted_.end(), std::string_view(uid),
                               [this](const stored& s, std::string_view k) { return key(s) < k; });
    const bool in_sorted = it != sorted_.end() && key(*it) == uid;
    n += (rec && !in_sorted) ? 1 : 0;
    n -= (!rec && in_sorted) ? 1 : 0;
  }
  return n;
}

bool state_store::record(const std::string& uid, uid_outcome outcome, std::int64_t time,
                         std::int64_t size, std::string& error, const std::string& digest) {
  uid_record r{outcome, time, size, digest};
  std::string line;
  format(line, uid, r);
  if (!append(line, error)) return false;
  changed_[uid] = r;
  return true;
}

bool state_store::forget(const std::vector<std::string>& uids, std::string& error) {
  std::string lines;
  for (const auto& uid : uids)
    if (find(uid)) lines += "X 0 - - " + uid + "\n";
  if (lines.empty()) return true;
  if (!append(lines, error)) return false;
  for (const auto& uid : uids) changed_[uid] = std::nullopt;
  return true;
}

void state_store::merge() {
  if (changed_.empty()) return;
  std::vector<std::pair<std::string_view, const std::optional<uid_record>*>> updates;
  updates.reserve(changed_.size());
  for (const auto& [uid, rec] : changed_) updates.emplace_back(uid, &rec);
  std::sort(updates.begin(), updates.end());
  std::vector<stored> merged;
  merged.reserve(sorted_.size() + updates.size());
  std::size_t i = 0;
  for (const auto& [uid, rec] : updates) {
    while (i < sorted_.size() && key(sorted_[i]) < uid) merged.push_back(sorted_[i++]);
    std::uint32_t offset = 0;
    const bool has_digest = *rec && !(*rec)->digest.empty();
    if (i < sorted_.size() && key(sorted_[i]) == uid) {
      // Replaced (or forgotten): the UID is in the arena; a digest goes in anew with it.
      offset = sorted_[i++].offset;
      if (has_digest) offset = store_key(uid, (*rec)->digest);
    } else {
      offset = store_key(uid, has_digest ? (*rec)->digest : std::string());
    }
    if (*rec)
      merged.push_back({offset, static_cast<std::uint16_t>(uid.size()), (*rec)->outcome, has_digest,
                        (*rec)->time, (*rec)->size});
  }
  while (i < sorted_.size()) merged.push_back(sorted_[i++]);
  sorted_ = std::move(merged);
  changed_.clear();
}

void state_store::for_each(const std::function<void(std::string_view, const uid_record&)>& each) {
  merge();
  for (const auto& s : sorted_) each(key(s), record_of(s));
}

std::string state_store::meta(const std::string& name) const {
  auto it = meta_.find(name);
  return it == meta_.end() ? std::string() : it->second;
}

void state_store::set_meta(const std::string& name, const std::string& value) {
  if (meta(name) == value && meta_.count(name)) return;
  meta_[name] = value;
  meta_changed_ = true;
}

bool state_store::compact(std::string& error) {
  // The file is compact already.
  if (journal_fd_ >= 0 && changed_.empty() && !meta_changed_) return true;
  merge();
  const std::string tmp = path_ + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = sys_error("cannot write", tmp);
    return false;
  }
  // Written in pieces: a million records need no second copy in memory.
  std::string text = std::string(header_v3) + "\n";
  for (const auto& [name, value] : meta_) text += "M " + name + " " + value + "\n";
  bool ok = true;
  for (const auto& s : sorted_) {
    format(text, key(s), record_of(s));
    if (text.size() >= 256 * 1024) {
      ok = ok && write_all(fd, text);
      text.clear();
    }
  }
  ok = ok && write_all(fd, text) && ::fsync(fd) == 0;
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
  meta_changed_ = false;
  return true;
}

}  // namespace postern::fetch
