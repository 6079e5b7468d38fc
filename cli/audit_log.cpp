#include "cli/audit_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "cli/log.hpp"

namespace postern::cli {

namespace lg = postern::log;

bool audit_log::open(const std::string& path, std::string& error) {
  path_ = path;
  if (path.empty()) return true;
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd_ < 0) {
    error = "audit file " + path + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

audit_log::~audit_log() {
  if (fd_ >= 0) ::close(fd_);
}

json_line::json_line() {
  text_ = "{\"time\":";
  lg::append_quoted(text_, lg::utc_timestamp());
}

json_line& json_line::field(const char* key, const std::string& value) {
  text_ += ",\"";
  text_ += key;
  text_ += "\":";
  lg::append_quoted(text_, value);
  return *this;
}

json_line& json_line::number(const char* key, std::uint64_t value) {
  text_ += ",\"";
  text_ += key;
  text_ += "\":" + std::to_string(value);
  return *this;
}

json_line& json_line::list(const char* key, const std::vector<std::string>& values) {
  text_ += ",\"";
  text_ += key;
  text_ += "\":[";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) text_ += ',';
    lg::append_quoted(text_, values[i]);
  }
  text_ += "]";
  return *this;
}

json_line& json_line::boolean(const char* key, bool value) {
  text_ += ",\"";
  text_ += key;
  text_ += value ? "\":true" : "\":false";
  return *this;
}

std::string json_line::finish() { return text_ + "}\n"; }

void audit_log::write(const audit_record& r) {
  if (fd_ < 0) return;
  json_line line;
  line.field("session", r.session)
      .field("client", r.client)
      .field("mailbox", r.mailbox)
      .field("upstream", r.upstream)
      .field("mail_from", r.mail_from)
      .list("recipients", r.recipients)
      .field("message_id", r.message_id)
      .number("size", r.size)
      .field("sha256", r.sha256)
      .field("outcome", r.outcome)
      .field("stage", r.stage)
      .field("reply", r.reply);
  if (!r.edits.empty()) line.field("edits", r.edits);
  if (r.uncertain) line.boolean("uncertain", true);
  append(line.finish());
}

void audit_log::append(const std::string& line) {
  if (fd_ < 0) return;
  ssize_t n = ::write(fd_, line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size()))
    lg::error("audit.write_failed", {{"file", path_}, {"error", std::strerror(errno)}});
}

}  // namespace postern::cli
