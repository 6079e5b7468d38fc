#pragma once
/// Authenticated upstream sessions, kept per mailbox and reused (RSET-clean) until they
/// idle out; the provider's rate limit and a back-off after a refused login are enforced
/// here, so a busy client MTA cannot hammer a provider or lock a mailbox out.

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>

#include <asio/awaitable.hpp>
#include <asio/steady_timer.hpp>

#include "conf/forwarder_config.hpp"
#include "forwarder/smtp/client.hpp"

namespace postern::forwarder {

class upstream_pool {
 public:
  using clock = std::chrono::steady_clock;

  upstream_pool(asio::any_io_executor ex, const conf::forwarder_config& config, bool trace);
  ~upstream_pool();

  /// A refusal (4yz) when the mailbox may not send right now (rate limit, login back-off);
  /// code 0 when it may, and then the submission is counted against the rate limit at once,
  /// so concurrent sessions cannot all pass the check before any of them is counted (the
  /// provider would answer the excess with a 5yz: Legalmail does). A transaction that fails
  /// later still counts, which errs on the safe side.
  smtp::reply admit(const conf::mailbox& m);

  struct lease {
    std::unique_ptr<smtp::client> client;  ///< null on failure
    smtp::client_result failure;
    bool reused = false;
  };
  /// An idle session of the mailbox, or a new one (connected, TLS, logged in).
  asio::awaitable<lease> async_acquire(const conf::mailbox& m, const std::string& session);
  /// Returns a session after a completed or reset transaction; anything else is closed.
  void release(const conf::mailbox& m, std::unique_ptr<smtp::client> client);
  /// Closes every idle session; later releases close theirs too.
  void close_all();
  /// Makes the connections to the providers (tests: scripted streams); unset: real ones.
  void set_connector(net::channel_source connect) { connect_ = std::move(connect); }

 private:
  struct idle_session {
    std::unique_ptr<smtp::client> client;
    clock::time_point since;
  };
  struct mailbox_state {
    std::deque<idle_session> idle;
    std::deque<clock::time_point> sent;  ///< submissions in the last minute
    std::shared_ptr<net::tls_context> tls;
    std::string tls_error;
    clock::time_point login_blocked_until{};
    std::chrono::seconds login_backoff{0};
    std::string login_failure;  ///< the provider's reply to the refused login
  };
  mailbox_state& state(const conf::mailbox& m);
  smtp::client_params params_for(const conf::mailbox& m, mailbox_state& st,
                                 const std::string& session);
  asio::awaitable<void> reap();
  void start_reaper();

  asio::any_io_executor executor_;
  const conf::forwarder_config& config_;
  bool trace_;
  bool closed_ = false;
  net::channel_source connect_;
  std::map<std::string, mailbox_state> states_;  ///< by lower-case address
  asio::steady_timer reaper_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace postern::forwarder
