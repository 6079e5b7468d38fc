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
#include "forwarder/smtp/client_machine.hpp"
#include "forwarder/smtp/dot_codec.hpp"
#include "forwarder/smtp/reply.hpp"
#include "tunnel/net/line_channel.hpp"
#include "tunnel/net/secret_source.hpp"
#include "tunnel/net/tls_context.hpp"

namespace postern::smtp {

struct client_params {
  conf::endpoint endpoint;
  std::string helo_name;
  std::shared_ptr<net::tls_context> tls;  ///< required unless the endpoint is cleartext
  std::string login;                      ///< "" = no AUTH
  /// Reads the password when it is needed (and only then); nullopt + error on failure.
  net::password_source password;
  /// How the connection is made; unset: to the endpoint, within connect_timeout. Tests hand
  /// in scripted streams through it.
  net::channel_source connect;
  conf::duration connect_timeout{std::chrono::seconds(30)};
  conf::duration handshake_timeout{std::chrono::seconds(30)};
  conf::duration reply_timeout{std::chrono::minutes(2)};
  conf::duration final_reply_timeout{std::chrono::minutes(10)};
  /// QUIT's answer: politeness only, so it may not hold a worker long.
  conf::duration quit_timeout{std::chrono::seconds(5)};
  std::string session;  ///< session id for trace lines
  bool trace = false;   ///< log the dialogue (AUTH redacted)
  bool lmtp = false;    ///< LMTP (RFC 2033): LHLO instead of EHLO
  /// What the server is to us, for log lines: "upstream" (the forwarder's provider) or
  /// "target" (where postern-fetch delivers): "<role>.connected role=URL".
  std::string role = "upstream";
};

/// Moves bytes between a connection and a client_machine: the machine decides what is said.
class client {
 public:
  client(asio::any_io_executor ex, client_params params);

  /// Connects, reads the greeting, says EHLO, starts TLS as the endpoint says, logs in.
  asio::awaitable<client_result> async_open();
  /// The same over a connection made elsewhere (a scripted stream in tests).
  asio::awaitable<client_result> async_open(std::unique_ptr<net::line_channel> channel);
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
  /// QUIT, politely (within quit_timeout), then close.
  asio::awaitable<void> async_quit();
  /// Drops the connection at once; an unfinished DATA is then discarded by the server
  /// (RFC 5321 §4.1.1.4: no final dot, no delivery).
  void abort();

  /// Still connected, in no transaction, and the server has not hung up meanwhile.
  bool reusable();
  [[nodiscard]] const ehlo_capabilities& capabilities() const { return machine_.capabilities(); }
  [[nodiscard]] std::string tls_version() const { return channel_ ? channel_->tls_version() : ""; }
  [[nodiscard]] std::string tls_cipher() const { return channel_ ? channel_->tls_cipher() : ""; }
  [[nodiscard]] const std::string& verify() const { return verify_; }
  [[nodiscard]] const client_params& params() const { return params_; }

 private:
  /// Carries out the machine's actions, from `a` on, until it says the operation is done.
  /// Not a coroutine itself: it keeps `a` in next_ for drive() (see ARCHITECTURE.md, the
  /// coroutine parameter rule).
  asio::awaitable<client_result> run(client_machine::action a) {
    next_ = std::move(a);
    return drive();
  }
  asio::awaitable<client_result> drive();
  asio::awaitable<std::optional<reply>> read_reply(reply_wait wait, client_result& failure);
  /// One line, under the deadline of the reply it belongs to (armed by its first line).
  asio::awaitable<std::optional<std::string>> read_line(reply_wait wait, client_result& failure);
  asio::awaitable<client_result> start_tls();
  asio::awaitable<client_result> flush(const char* what);
  client_result io_failure(net::io_status s, const std::string& what);
  [[nodiscard]] conf::duration timeout(reply_wait wait) const;
  [[nodiscard]] bool tracing() const;
  void trace(const char* direction, std::string_view line);
  [[nodiscard]] bool usable() const { return channel_ && !machine_.broken(); }

  asio::any_io_executor executor_;
  client_params params_;
  client_machine machine_;
  std::unique_ptr<net::line_channel> channel_;
  client_machine::action next_;  ///< the action drive() carries out next
  dot_encoder encoder_;
  std::string verify_;
  std::optional<net::line_channel::clock::time_point> reply_deadline_;
};

}  // namespace postern::smtp
