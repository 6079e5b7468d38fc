#pragma once
/// The forwarder's audit trail: one JSON line per message and outcome, appended with a
/// single write so concurrent writers (and logrotate's copytruncate) never split a line.
/// It is the local half of the PEC legal trail; it never holds a secret.

#include <cstdint>
#include <string>
#include <vector>

namespace postern::cli {

struct audit_record {
  std::string session;
  std::string client;    ///< client address, or "sendmail"
  std::string mailbox;   ///< the sending mailbox, or "" when none was found
  std::string upstream;  ///< endpoint URL
  std::string mail_from;
  std::vector<std::string> recipients;
  std::string message_id;
  std::uint64_t size = 0;
  std::string sha256;   ///< of the message as relayed (after header edits), hex
  std::string outcome;  ///< "relayed", "rejected", "deferred", "failed"
  std::string stage;    ///< where it was decided: "mail", "rcpt" or "data"
  std::string reply;    ///< the final reply, upstream's own when there was one
  std::string edits;    ///< header changes made (PEC)
  /// The whole message went up but no answer to its end came back: the upstream may have
  /// taken it (the client was told 4yz and will send it again).
  bool uncertain = false;
};

/// One JSON object, built field by field ("time" first), for an audit line.
class json_line {
 public:
  json_line();
  json_line& field(const char* key, const std::string& value);
  json_line& number(const char* key, std::uint64_t value);
  json_line& list(const char* key, const std::vector<std::string>& values);
  json_line& boolean(const char* key, bool value);
  /// The line, with its newline.
  std::string finish();

 private:
  std::string text_;
};

class audit_log {
 public:
  /// Opens (creating, mode 0640) the file; "" disables the log. False + error on failure.
  bool open(const std::string& path, std::string& error);
  ~audit_log();
  void write(const audit_record& r);
  /// Appends a line built with json_line (one write call).
  void append(const std::string& line);
  [[nodiscard]] bool enabled() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
  std::string path_;
};

}  // namespace postern::cli
