#pragma once
/// A POP3 client for one mailbox session: connect, TLS (implicit or STLS, verified), CAPA,
/// login (SASL PLAIN when offered, else USER/PASS), UIDL, LIST, RETR streamed to a sink,
/// DELE, QUIT. Results are classified like the SMTP client's and carry the server's text.

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>

#include "conf/endpoint.hpp"
#include "conf/secret.hpp"
#include "conf/units.hpp"
#include "forwarder/smtp/client.hpp"
#include "pop3_protocol.hpp"
#include "tunnel/net/line_channel.hpp"
#include "tunnel/net/secret_source.hpp"
#include "tunnel/net/tls_context.hpp"

namespace postern::fetch {

using smtp::failure_kind;

struct pop3_result {
  failure_kind kind = failure_kind::none;
  std::string server;  ///< the server's status line text, when there was one
  std::string detail;  ///< what happened, for logs; never a secret
  [[nodiscard]] bool ok() const { return kind == failure_kind::none; }
};

struct pop3_params {
  conf::endpoint endpoint;
  std::shared_ptr<net::tls_context> tls;
  std::string login;
  net::password_source password;
  conf::duration connect_timeout{std::chrono::seconds(30)};
  conf::duration handshake_timeout{std::chrono::seconds(30)};
  conf::duration reply_timeout{std::chrono::minutes(2)};     ///< a command, its whole reply
  conf::duration retrieve_timeout{std::chrono::minutes(5)};  ///< between two reads of RETR
  conf::duration message_timeout{std::chrono::minutes(30)};  ///< a whole RETR or listing
  std::string session;
  bool trace = false;
};

class pop3_client {
 public:
  pop3_client(asio::any_io_executor ex, pop3_params params);

  asio::awaitable<pop3_result> async_open();
  /// UIDL; a malformed listing is a protocol failure (guessing could re-deliver or skip).
  asio::awaitable<pop3_result> async_uidl(uid_listing& out);
  asio::awaitable<pop3_result> async_list(size_listing& out);
  /// TOP number 0: the header block of a message, without its body (at most 1 MiB).
  asio::awaitable<pop3_result> async_top(std::uint32_t number, std::string& header);
  /// With PIPELINING (RFC 2449 §6.6) asks for message `number` ahead, so the server sends it
  /// while earlier ones are being delivered; async_retr(number) reads it later, in order.
  /// Without PIPELINING it does nothing (async_retr sends the RETR itself).
  void request_retr(std::uint32_t number);
  /// Retrieves message `number`; `sink` receives the message bytes (transparency undone) as
  /// they arrive and returns false to stop (the session is then unusable).
  using body_sink = std::function<asio::awaitable<bool>(const std::string&)>;
  asio::awaitable<pop3_result> async_retr(std::uint32_t number, const body_sink& sink);
  /// Marks a message for deletion. With PIPELINING the command goes out with the next one and
  /// its answer is read in turn (a refusal is logged and counted); without, it is awaited.
  asio::awaitable<pop3_result> async_dele(std::uint32_t number);
  /// Reads what is still outstanding, then QUIT: only now does the server expunge what was
  /// marked with DELE (RFC 1939 §6).
  asio::awaitable<pop3_result> async_quit();
  [[nodiscard]] const pop3_capabilities& capabilities() const { return caps_; }
  /// DELE commands the server accepted (they take effect only if QUIT succeeds).
  [[nodiscard]] std::uint32_t deletions() const { return deletions_; }
  /// DELE commands sent or queued whose answer has not been read.
  [[nodiscard]] std::uint32_t pending_deletions() const {
    return static_cast<std::uint32_t>(
        std::count_if(pending_.begin(), pending_.end(), [](const auto& p) { return !p.retr; }));
  }

 private:
  asio::awaitable<pop3_result> command(const std::string& line, bool sensitive = false);
  asio::awaitable<pop3_result> read_status();
  /// Reads a multi-line response to its "." (transparency undone), each line to `each`;
  /// the whole of it within message_timeout, each line within reply_timeout.
  asio::awaitable<pop3_result> read_lines(const std::function<bool(std::string_view)>& each,
                                          std::string& error);
  asio::awaitable<pop3_result> read_body(std::uint32_t number, const body_sink& sink);
  /// Reads replies to pipelined commands until the one for `stop` (RETR) is next, or all.
  asio::awaitable<pop3_result> read_pending(std::optional<std::uint32_t> stop);
  asio::awaitable<pop3_result> start_tls();
  void count_deletion(std::uint32_t number, const pop3_result& r);
  asio::awaitable<pop3_result> login();
  pop3_result broken(failure_kind kind, std::string detail);
  void trace(const char* dir, std::string_view line);

  asio::any_io_executor executor_;
  pop3_params params_;
  std::unique_ptr<net::line_channel> channel_;
  pop3_capabilities caps_;
  bool broken_ = false;
  struct pending_reply {
    bool retr;  ///< RETR (a multi-line answer), else DELE
    std::uint32_t number;
  };
  std::deque<pending_reply> pending_;  ///< pipelined commands, oldest first
  std::uint32_t deletions_ = 0;
};

}  // namespace postern::fetch
