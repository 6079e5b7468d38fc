#pragma once
/// An IMAP client for one mailbox session: connect, TLS (implicit or STARTTLS, verified),
/// login (AUTHENTICATE PLAIN when offered, else LOGIN), ENABLE, SELECT, listings by UID,
/// message bodies streamed to a sink (a literal of any size, memory flat), pipelined flag
/// changes, moves and expunges, IDLE, LOGOUT. The dialogue is imap_machine's; this moves bytes.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>

#include "conf/endpoint.hpp"
#include "conf/units.hpp"
#include "fetch/imap_machine.hpp"
#include "tunnel/net/line_channel.hpp"
#include "tunnel/net/secret_source.hpp"
#include "tunnel/net/tls_context.hpp"

namespace postern::fetch {

using imap_params = session_params;

class imap_client {
 public:
  imap_client(asio::any_io_executor ex, imap_params params);

  asio::awaitable<imap_result> async_open();
  /// The same over a connection made elsewhere (a scripted stream in tests).
  asio::awaitable<imap_result> async_open(std::unique_ptr<net::line_channel> channel);
  asio::awaitable<imap_result> async_select(const std::string& folder, bool read_only,
                                            std::uint32_t known_uidvalidity = 0,
                                            std::uint64_t known_modseq = 0);
  /// The folder's messages with UID from_uid and above.
  asio::awaitable<imap_result> async_list(std::uint32_t from_uid, std::vector<imap_listed>& out);
  asio::awaitable<imap_result> async_headers(const std::string& uid_set,
                                             std::vector<imap_header>& out);
  /// Asks for a message ahead (pipelined); async_body reads it later, in order.
  void request_body(std::uint32_t uid);
  using body_sink = std::function<asio::awaitable<bool>(const std::string&)>;
  /// Message `uid`'s octets to `sink` as they arrive (false from the sink stops: the session
  /// is then unusable). `found` is false when the server no longer has the message.
  asio::awaitable<imap_result> async_body(std::uint32_t uid, const body_sink& sink, bool& found);
  /// Pipelined changes: sent with the next command, their answers read in turn.
  void store(const std::string& uid_set, const std::string& flags);
  void copy(const std::string& uid_set, const std::string& folder);
  void move(const std::string& uid_set, const std::string& folder);
  void expunge(const std::string& uid_set);
  /// Sends what is queued and reads every outstanding answer.
  asio::awaitable<imap_result> async_sync();
  /// IDLE for at most `period`: true in `new_mail` when the folder grew.
  asio::awaitable<imap_result> async_idle(conf::duration period, bool& new_mail);
  asio::awaitable<imap_result> async_logout();

  [[nodiscard]] const imap_capabilities& capabilities() const { return machine_.capabilities(); }
  [[nodiscard]] const imap_folder& folder() const { return machine_.folder(); }
  [[nodiscard]] bool qresync() const { return machine_.qresync(); }
  [[nodiscard]] bool condstore() const { return machine_.condstore(); }
  [[nodiscard]] std::uint32_t expunged() const { return machine_.expunged(); }
  [[nodiscard]] std::uint32_t moved() const { return machine_.moved(); }
  [[nodiscard]] std::uint32_t refusals() const { return machine_.refusals(); }
  [[nodiscard]] bool usable() const { return channel_ && !machine_.broken(); }
  /// Ends the session's use now: the wait under way and every later one fail at once.
  void cut() {
    if (channel_) channel_->cut();
  }

 private:
  /// Carries out the machine's actions from `a` on. Not a coroutine (the coroutine rule).
  asio::awaitable<imap_result> run(imap_machine::action a, const body_sink* sink = nullptr,
                                   conf::duration idle_period = {}) {
    next_ = std::move(a);
    sink_ = sink;
    idle_period_ = idle_period;
    idle_until_ = net::line_channel::clock::now() + idle_period;
    return drive();
  }
  asio::awaitable<imap_result> drive();
  asio::awaitable<std::optional<imap_result>> step(imap_machine::action& a);
  asio::awaitable<void> exchange(imap_machine::action& a, bool idle);
  /// Reads one whole response (its literals inline, a body streamed to the sink) by `deadline`.
  asio::awaitable<imap_result> read_response(std::string& wire,
                                             net::line_channel::clock::time_point deadline);
  /// `n` octets of a literal: to the sink, dropped, or appended to `wire`.
  asio::awaitable<imap_result> read_literal(std::uint64_t n, imap_machine::literal_use use,
                                            std::string& wire);
  void queue(const imap_machine::action& a);
  [[nodiscard]] bool tracing() const;
  void trace(const char* dir, std::string_view line);

  asio::any_io_executor executor_;
  imap_params params_;
  imap_machine machine_;
  std::unique_ptr<net::line_channel> channel_;
  imap_machine::action next_;
  const body_sink* sink_ = nullptr;
  net::line_channel::clock::time_point op_deadline_{};
  net::line_channel::clock::time_point idle_until_{};
  conf::duration idle_period_{};  ///< IDLE: the answers after DONE get their time after it
};

}  // namespace postern::fetch
