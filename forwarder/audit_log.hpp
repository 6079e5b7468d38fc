#pragma once
/// The forwarder's audit trail: one JSON line per message and outcome, appended with a
/// single write so concurrent writers (and logrotate's copytruncate) never split a line.
/// It is the local half of the PEC legal trail; it never holds a secret.

#include <cstdint>
#include <string>
#include <vector>

namespace postern::forwarder {

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
  std::string reply;    ///< the final reply, upstream's own when there was one
  std::string edits;    ///< header changes made (PEC)
};

class audit_log {
 public:
  /// Opens (creating, mode 0640) the file; "" disables the log. False + error on failure.
  bool open(const std::string& path, std::string& error);
  ~audit_log();
  void write(const audit_record& r);
  [[nodiscard]] bool enabled() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
  std::string path_;
};

}  // namespace postern::forwarder
