#include "audit_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "cli/log.hpp"

namespace postern::forwarder {

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

void audit_log::write(const audit_record& r) {
  if (fd_ < 0) return;
  std::string line = "{\"time\":";
  lg::append_quoted(line, lg::utc_timestamp());
  auto field = [&](const char* key, const std::string& value) {
    line += ",\"";
    line += key;
    line += "\":";
    lg::append_quoted(line, value);
  };
  field("session", r.session);
  field("client", r.client);
  field("mailbox", r.mailbox);
  field("upstream", r.upstream);
  field("mail_from", r.mail_from);
  line += ",\"recipients\":[";
  for (std::size_t i = 0; i < r.recipients.size(); ++i) {
    if (i) line += ',';
    lg::append_quoted(line, r.recipients[i]);
  }
  line += "]";
  field("message_id", r.message_id);
  line += ",\"size\":" + std::to_string(r.size);
  field("sha256", r.sha256);
  field("outcome", r.outcome);
  field("reply", r.reply);
  if (!r.edits.empty()) field("edits", r.edits);
  line += "}\n";
  ssize_t n = ::write(fd_, line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size()))
    lg::error("audit.write_failed", {{"file", path_}, {"error", std::strerror(errno)}});
}

}  // namespace postern::forwarder
