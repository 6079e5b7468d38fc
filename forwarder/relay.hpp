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

#include <asio/awaitable.hpp>

#include "cli/audit_log.hpp"
#include "client_auth.hpp"
#include "conf/forwarder_config.hpp"
#include "forwarder/smtp/command.hpp"
#include "submission_rules.hpp"
#include "tunnel/net/digest.hpp"
#include "tunnel/net/spool_file.hpp"
#include "upstream_pool.hpp"

namespace postern::forwarder {

/// Everything a forwarder process shares between sessions; replaced whole on reload, so a
/// running session keeps the configuration it started with.
struct forwarder_runtime {
  conf::forwarder_config config;
  std::unique_ptr<upstream_pool> pool;
  std::shared_ptr<net::tls_context> server_tls;  ///< STARTTLS for clients, or null
  std::optional<client_users> users;             ///< AUTH for clients, when configured
  cli::audit_log audit;
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

class relay_transaction {
 public:
  relay_transaction(forwarder_runtime& rt, std::string session, std::string client);
  ~relay_transaction();
  relay_transaction(const relay_transaction&) = delete;
  relay_transaction& operator=(const relay_transaction&) = delete;

  asio::awaitable<smtp::reply> mail(smtp::mail_path from);
  asio::awaitable<smtp::reply> rcpt(smtp::mail_path to);
  /// Relays the message (the client's DATA already got its 354). nullopt when the source
  /// failed (client gone): nothing was delivered and there is nobody to answer.
  asio::awaitable<std::optional<smtp::reply>> data(message_source& source);
  /// Ends the transaction (RSET, or after DATA); the upstream session goes back to the pool.
  asio::awaitable<void> reset();
  /// Drops the upstream session at once (shutdown): what waits on it fails, an unfinished
  /// DATA is discarded by the server (no final dot), and nothing goes back to the pool.
  void abandon();

  [[nodiscard]] bool has_sender() const { return from_.has_value(); }
  [[nodiscard]] std::size_t recipients() const { return accepted_.size(); }

 private:
  /// Takes a session for the route's mailbox; `admitted` when the rate limit was already
  /// checked and counted for this submission.
  asio::awaitable<smtp::reply> open_upstream(const route& r, bool admitted = false);
  asio::awaitable<smtp::reply> upstream_mail();
  asio::awaitable<smtp::reply> upstream_rcpt(const smtp::mail_path& to);
  /// The message on its way: headers (after PEC edits), recipients, the Bcc split's spool.
  struct outgoing {
    smtp::header_block headers;
    std::vector<std::string> recipients;
    std::vector<std::string> bcc;  ///< PEC recipients reached by separate submissions
    std::optional<net::spool_file> spool;
  };
  /// With `match` by header: the mailbox the From: header names, its session, MAIL and RCPTs.
  asio::awaitable<smtp::reply> route_by_header(const smtp::header_block& headers);
  /// PEC rules and edits, the Bcc split, the SIZE limit, DATA upstream; a refusal or code 0.
  asio::awaitable<smtp::reply> prepare(outgoing& out);
  /// A message whose end servers disagree about is refused (not completed upstream).
  static std::optional<smtp::reply> unsendable(const message_source& source);
  /// The final dot (or none, after a failure), the audit line, the Bcc copies.
  asio::awaitable<smtp::reply> end_message(outgoing& out,
                                           const std::optional<smtp::reply>& failure);
  asio::awaitable<std::optional<smtp::reply>> stream(message_source& source, std::string head,
                                                     message_source::status st);
  struct body_progress {
    net::sha256 sha;
    std::optional<smtp::reply> failure;  ///< why the message will not be completed upstream
    std::size_t recipients = 0;
    net::spool_file* spool = nullptr;  ///< also keeps the body for Bcc copies
  };
  asio::awaitable<smtp::reply> narrow_to_main(const std::vector<std::string>& main);
  asio::awaitable<smtp::reply> send_copy(const smtp::header_block& headers,
                                         const std::string& address, const net::spool_file& spool);
  asio::awaitable<smtp::reply> send_copies(const smtp::header_block& headers,
                                           const smtp::reply& main,
                                           const std::vector<std::string>& bcc,
                                           const net::spool_file& spool);
  smtp::reply split_outcome(const smtp::reply& main, const std::vector<std::string>& bcc,
                            const std::vector<smtp::reply>& copies) const;
  asio::awaitable<void> send_body(const std::string& bytes, body_progress& p);
  asio::awaitable<std::optional<smtp::reply>> refuse(message_source& source,
                                                     message_source::status st, smtp::reply r);
  asio::awaitable<message_source::status> drain(message_source& source, message_source::status st);
  /// The 4yz for a failure of the upstream; `after_final_dot`: it may have taken the message.
  smtp::reply upstream_failure(const smtp::client_result& r, bool after_final_dot = false) const;
  [[nodiscard]] std::string upstream_name() const;
  void finish_upstream(bool reusable);
  /// The audit line and summary of one submission (`recipients` when not all accepted ones).
  void audit(const std::string& outcome, const smtp::reply& final_reply,
             const std::vector<std::string>* recipients = nullptr, const char* stage = "data");
  /// The warning and audit line of a refusal (or deferral) before the message was sent on.
  void audit_refusal(const char* stage, const smtp::reply& r,
                     const std::vector<std::string>* recipients = nullptr);

  forwarder_runtime& rt_;
  const conf::forwarder_config& config_;
  std::string session_;
  std::string client_;
  std::optional<smtp::mail_path> from_;
  std::vector<smtp::mail_path> accepted_;
  std::vector<refused_recipient> refused_;  ///< RCPTs the upstream refused, with its reply
  route route_;
  bool pec_ = false;
  std::unique_ptr<smtp::client> upstream_;
  bool abandoned_ = false;
  bool upstream_reused_ = false;
  std::string upstream_tls_;  ///< TLS version of the upstream session, for the summary
  // Of the DATA in progress, for the summary and the audit line.
  std::string message_id_;
  std::string edits_;
  bool final_reply_lost_ = false;  ///< the audit line says "uncertain"
  std::string sha256_;
  std::uint64_t size_ = 0;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace postern::forwarder
