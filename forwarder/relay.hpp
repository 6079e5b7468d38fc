#pragma once
/// One message's way through the forwarder, independent of where it comes from (an SMTP
/// client or --sendmail): routing, the upstream session, PEC rules, streaming, audit.
/// Nothing is acknowledged that the upstream has not acknowledged: every reply returned
/// here is either the upstream's own or a refusal made before anything was sent on.

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <openssl/sha.h>
#include <asio/awaitable.hpp>

#include "audit_log.hpp"
#include "client_auth.hpp"
#include "conf/forwarder_config.hpp"
#include "smtp_command.hpp"
#include "submission_rules.hpp"
#include "upstream_pool.hpp"

namespace postern::forwarder {

/// Everything a forwarder process shares between sessions; replaced whole on reload, so a
/// running session keeps the configuration it started with.
struct forwarder_runtime {
  conf::forwarder_config config;
  std::unique_ptr<upstream_pool> pool;
  std::shared_ptr<tunnel::tls_context> server_tls;  ///< STARTTLS for clients, or null
  std::optional<client_users> users;                ///< AUTH for clients, when configured
  audit_log audit;
  bool trace = false;
};

/// Where the message bytes come from during DATA.
class message_source {
 public:
  enum class status { more, end, failed };
  virtual ~message_source() = default;
  /// Appends the next message bytes (transparency undone) to `out`.
  virtual asio::awaitable<status> read(std::string& out) = 0;
  /// The input ended in a way servers disagree about (see dot_decoder::ambiguous_dot).
  [[nodiscard]] virtual bool ambiguous() const { return false; }
  /// The input held a CR not followed by LF.
  [[nodiscard]] virtual bool bare_cr() const { return false; }
  [[nodiscard]] virtual std::string error() const = 0;
};

/// Lower-case hex of a digest, for the audit log.
std::string hex_digest(const uint8_t* data, std::size_t len);

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

class relay_transaction {
 public:
  relay_transaction(forwarder_runtime& rt, std::string session, std::string client);
  ~relay_transaction();
  relay_transaction(const relay_transaction&) = delete;
  relay_transaction& operator=(const relay_transaction&) = delete;

  // By reference: GCC 12 destroys a prvalue argument twice when a coroutine takes a class
  // type by value. The caller's object must outlive the co_await (a named local does).
  asio::awaitable<reply> mail(const mail_path& from);
  asio::awaitable<reply> rcpt(const mail_path& to);
  /// Relays the message (the client's DATA already got its 354). nullopt when the source
  /// failed (client gone): nothing was delivered and there is nobody to answer.
  asio::awaitable<std::optional<reply>> data(message_source& source);
  /// Ends the transaction (RSET, or after DATA); the upstream session goes back to the pool.
  asio::awaitable<void> reset();

  [[nodiscard]] bool has_sender() const { return from_.has_value(); }
  [[nodiscard]] std::size_t recipients() const { return accepted_.size(); }

 private:
  /// Takes a session for the route's mailbox; `admitted` when the rate limit was already
  /// checked and counted for this submission.
  asio::awaitable<reply> open_upstream(const route& r, bool admitted = false);
  asio::awaitable<reply> upstream_mail();
  asio::awaitable<reply> upstream_rcpt(const mail_path& to);
  asio::awaitable<std::optional<reply>> stream(message_source& source, std::string head,
                                               message_source::status st);
  struct body_progress {
    SHA256_CTX sha;
    std::optional<reply> failure;  ///< why the message will not be completed upstream
    std::size_t recipients = 0;
    spool_file* spool = nullptr;  ///< also keeps the body for Bcc copies
  };
  asio::awaitable<reply> narrow_to_main(const std::vector<std::string>& main);
  asio::awaitable<reply> send_copy(const header_block& headers, const std::string& address,
                                   const spool_file& spool);
  asio::awaitable<reply> send_copies(const header_block& headers, const reply& main,
                                     const std::vector<std::string>& bcc, const spool_file& spool);
  reply split_outcome(const reply& main, const std::vector<std::string>& bcc,
                      const std::vector<reply>& copies) const;
  asio::awaitable<void> send_body(const std::string& bytes, body_progress& p);
  asio::awaitable<std::optional<reply>> refuse(message_source& source, message_source::status st,
                                               const reply& r);
  asio::awaitable<message_source::status> drain(message_source& source, message_source::status st);
  reply upstream_failure(const client_result& r) const;
  [[nodiscard]] std::string upstream_name() const;
  void finish_upstream(bool reusable);
  /// The audit line and summary of one submission (`recipients` when not all accepted ones).
  void audit(const std::string& outcome, const reply& final_reply,
             const std::vector<std::string>* recipients = nullptr, const char* stage = "data");
  /// The warning and audit line of a refusal (or deferral) before the message was sent on.
  void audit_refusal(const char* stage, const reply& r,
                     const std::vector<std::string>* recipients = nullptr);

  forwarder_runtime& rt_;
  const conf::forwarder_config& config_;
  std::string session_;
  std::string client_;
  std::optional<mail_path> from_;
  std::vector<mail_path> accepted_;
  std::vector<refused_recipient> refused_;  ///< RCPTs the upstream refused, with its reply
  route route_;
  bool pec_ = false;
  std::unique_ptr<smtp_client> upstream_;
  bool upstream_reused_ = false;
  std::string upstream_tls_;  ///< TLS version of the upstream session, for the summary
  // Of the DATA in progress, for the summary and the audit line.
  std::string message_id_;
  std::string edits_;
  std::string sha256_;
  std::uint64_t size_ = 0;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace postern::forwarder
