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
#include "fetch/pop3_machine.hpp"
#include "pop3_protocol.hpp"
#include "tunnel/net/line_channel.hpp"
#include "tunnel/net/secret_source.hpp"
#include "tunnel/net/tls_context.hpp"

namespace postern::fetch {

using pop3_params = session_params;

/// Moves bytes between a connection and a pop3_machine: the machine decides what is said.
class pop3_client {
 public:
  pop3_client(asio::any_io_executor ex, pop3_params params);

  asio::awaitable<pop3_result> async_open();
  /// The same over a connection made elsewhere (a scripted stream in tests).
  asio::awaitable<pop3_result> async_open(std::unique_ptr<net::line_channel> channel);
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
  [[nodiscard]] const pop3_capabilities& capabilities() const { return machine_.capabilities(); }
  /// DELE commands the server accepted (they take effect only if QUIT succeeds).
  [[nodiscard]] std::uint32_t deletions() const { return machine_.deletions(); }
  /// DELE commands sent or queued whose answer has not been read.
  [[nodiscard]] std::uint32_t pending_deletions() const { return machine_.pending_deletions(); }

 private:
  using line_consumer = std::function<bool(std::string_view)>;
  /// Carries out the machine's actions from `a` on; `each` takes the lines of a listing and
  /// `error` says why it refused one. Not a coroutine (the coroutine rule): drive() is.
  asio::awaitable<pop3_result> run(pop3_machine::action a, const line_consumer* each = nullptr,
                                   const std::string* error = nullptr,
                                   const body_sink* sink = nullptr) {
    next_ = std::move(a);
    each_ = each;
    error_ = error;
    sink_ = sink;
    return drive();
  }
  asio::awaitable<pop3_result> drive();
  asio::awaitable<std::optional<pop3_result>> step(pop3_machine::action& a);
  asio::awaitable<pop3_result> read_status_line(std::string& line);
  asio::awaitable<void> exchange(pop3_machine::action& a);
  /// Reads a multi-line response to its "." (transparency undone), each line to `each`;
  /// the whole of it within message_timeout, each line within reply_timeout.
  asio::awaitable<pop3_result> read_lines(const line_consumer& each);
  asio::awaitable<pop3_result> read_body(std::uint32_t number, const body_sink& sink);
  [[nodiscard]] bool usable() const { return channel_ && !machine_.broken(); }
  [[nodiscard]] bool tracing() const;
  void trace(const char* dir, std::string_view line);

  asio::any_io_executor executor_;
  pop3_params params_;
  pop3_machine machine_;
  std::unique_ptr<net::line_channel> channel_;
  // The operation drive() is carrying out.
  pop3_machine::action next_;
  const line_consumer* each_ = nullptr;
  const std::string* error_ = nullptr;
  const body_sink* sink_ = nullptr;
};

}  // namespace postern::fetch
