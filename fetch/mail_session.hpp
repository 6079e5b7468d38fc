#pragma once
/// What the POP3 and IMAP clients share: the settings of one mailbox session, the result of
/// each operation (classified like the SMTP client's, with the server's own words), and the
/// steps they take alike (a verified TLS start, I/O failures, a failed STARTTLS preamble).

#include <chrono>
#include <memory>
#include <string>

#include <asio/awaitable.hpp>

#include "conf/endpoint.hpp"
#include "conf/units.hpp"
#include "forwarder/smtp/client_machine.hpp"
#include "tunnel/net/line_channel.hpp"
#include "tunnel/net/secret_source.hpp"
#include "tunnel/net/starttls_dialogue.hpp"
#include "tunnel/net/tls_context.hpp"

namespace postern::fetch {

using smtp::failure_kind;

struct session_result {
  failure_kind kind = failure_kind::none;
  std::string server;  ///< the server's status line text, when there was one
  std::string detail;  ///< what happened, for logs; never a secret
  [[nodiscard]] bool ok() const { return kind == failure_kind::none; }
};

/// "detail: server text", for logs and errors.
inline std::string describe(const session_result& r) {
  return r.detail + (r.server.empty() ? "" : ": " + r.server);
}

struct session_params {
  conf::endpoint endpoint;
  std::shared_ptr<net::tls_context> tls;
  std::string login;
  net::password_source password;
  conf::duration connect_timeout{std::chrono::seconds(30)};
  conf::duration handshake_timeout{std::chrono::seconds(30)};
  conf::duration reply_timeout{std::chrono::minutes(2)};     ///< a command, its whole reply
  conf::duration retrieve_timeout{std::chrono::minutes(5)};  ///< silence inside a message
  conf::duration message_timeout{std::chrono::minutes(30)};  ///< a whole message or listing
  std::string session;
  bool trace = false;
};

/// The result of an operation asked of a session that is closed or broken.
inline session_result not_connected() { return {failure_kind::connection, {}, "not connected"}; }

/// A connection to the endpoint (null, with `failure` set, when none could be made).
asio::awaitable<std::unique_ptr<net::line_channel>> connect_session(const asio::any_io_executor& ex,
                                                                    const session_params& p,
                                                                    session_result& failure);

/// With --trace, one protocol line in the log ("pop3", "imap"; dir "<" or ">").
void trace_line(const session_params& p, const char* protocol, const char* dir,
                std::string_view line);
[[nodiscard]] bool tracing(const session_params& p);

/// TLS on `channel` to the endpoint, verified as configured.
asio::awaitable<session_result> start_session_tls(net::line_channel& channel,
                                                  const session_params& p);

/// A read or write that failed, as a result: "what: the channel's error".
session_result io_failure(const net::line_channel& channel, net::io_status s,
                          const std::string& what);

/// Why a STARTTLS preamble failed, as a result (`server`: the endpoint, for the message).
session_result dialogue_failure(const net::starttls_dialogue::step& step,
                                const std::string& server);

}  // namespace postern::fetch
