#pragma once
/// An SMTP (or LMTP) client for one upstream session: connect, TLS (implicit or STARTTLS,
/// verified), EHLO, AUTH, then any number of transactions. Every step returns a classified
/// result carrying the server's own reply, so callers can pass it on unchanged. Used by the
/// forwarder's relay and by fetch's SMTP/LMTP delivery.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>

#include "conf/endpoint.hpp"
#include "conf/secret.hpp"
#include "conf/units.hpp"
#include "forwarder/smtp/dot_codec.hpp"
#include "forwarder/smtp/reply.hpp"
#include "tunnel/net/line_channel.hpp"
#include "tunnel/net/secret_source.hpp"
#include "tunnel/net/tls_context.hpp"

namespace postern::smtp {

enum class failure_kind {
  none,
  connection,          ///< could not connect, or the connection dropped
  tls,                 ///< handshake or verification failed, or STARTTLS not offered
  protocol,            ///< the server said something that is not SMTP
  auth,                ///< the server refused our login
  credentials,         ///< our own password could not be read (file, command)
  rejected_temporary,  ///< a 4yz reply
  rejected_permanent,  ///< a 5yz reply
  timeout,             ///< a phase ran out of time
};
const char* to_string(failure_kind k);

struct client_result {
  failure_kind kind = failure_kind::none;
  reply server;        ///< the server's reply, when there was one (code 0 otherwise)
  std::string detail;  ///< what happened, for logs; never holds a secret
  [[nodiscard]] bool ok() const { return kind == failure_kind::none; }
};

struct client_params {
  conf::endpoint endpoint;
  std::string helo_name;
  std::shared_ptr<net::tls_context> tls;  ///< required unless the endpoint is cleartext
  std::string login;                      ///< "" = no AUTH
  /// Reads the password when it is needed (and only then); nullopt + error on failure.
  net::password_source password;
  conf::duration connect_timeout{std::chrono::seconds(30)};
  conf::duration handshake_timeout{std::chrono::seconds(30)};
  conf::duration reply_timeout{std::chrono::minutes(2)};
  conf::duration final_reply_timeout{std::chrono::minutes(10)};
  std::string session;  ///< session id for trace lines
  bool trace = false;   ///< log the dialogue (AUTH redacted)
  bool lmtp = false;    ///< LMTP (RFC 2033): LHLO instead of EHLO
  /// What the server is to us, for log lines: "upstream" (the forwarder's provider) or
  /// "target" (where postern-fetch delivers): "<role>.connected role=URL".
  std::string role = "upstream";
};

class client {
 public:
  client(asio::any_io_executor ex, client_params params);

  /// Connects, reads the greeting, says EHLO, starts TLS as the endpoint says, logs in.
  asio::awaitable<client_result> async_open();
  /// MAIL FROM:<...> (the argument after "FROM:").
  asio::awaitable<client_result> async_mail(const std::string& path);
  asio::awaitable<client_result> async_rcpt(const std::string& path);
  /// DATA; success means the server answered 354.
  asio::awaitable<client_result> async_data();
  /// MAIL, one RCPT and DATA for a single-recipient transaction: in one write when the server
  /// offers PIPELINING (RFC 2920), else one at a time. Returns the first failure, if any.
  asio::awaitable<client_result> async_envelope(const std::string& from, const std::string& to);
  /// Queues message bytes (dot-stuffed on the way); sends when enough are queued.
  asio::awaitable<client_result> async_write_body(const char* data, std::size_t len);
  /// Ends the message and returns the server's final reply.
  asio::awaitable<client_result> async_end_data();
  asio::awaitable<client_result> async_reset();
  /// QUIT, politely, then close.
  asio::awaitable<void> async_quit();
  /// Drops the connection at once; an unfinished DATA is then discarded by the server
  /// (RFC 5321 §4.1.1.4: no final dot, no delivery).
  void abort();

  /// Still connected, in no transaction, and the server has not hung up meanwhile.
  bool reusable();
  [[nodiscard]] const ehlo_capabilities& capabilities() const { return caps_; }
  [[nodiscard]] std::string tls_version() {
    return channel_ ? channel_->stream().tls_version() : "";
  }
  [[nodiscard]] std::string tls_cipher() { return channel_ ? channel_->stream().tls_cipher() : ""; }
  [[nodiscard]] const std::string& verify() const { return verify_; }
  [[nodiscard]] const client_params& params() const { return params_; }

 private:
  asio::awaitable<client_result> command(const std::string& line, conf::duration timeout,
                                         bool sensitive = false);
  asio::awaitable<client_result> read_reply(conf::duration timeout);
  asio::awaitable<client_result> start_tls();
  asio::awaitable<client_result> ehlo();
  asio::awaitable<client_result> authenticate();
  client_result broken(failure_kind kind, std::string detail);
  void trace(const char* direction, std::string_view line);

  asio::any_io_executor executor_;
  client_params params_;
  std::unique_ptr<net::line_channel> channel_;
  ehlo_capabilities caps_;
  dot_encoder encoder_;
  std::string verify_;
  std::string auth_used_;  ///< the SASL mechanism of the login, for the log
  bool in_transaction_ = false;
  bool broken_ = false;
};

}  // namespace postern::smtp
