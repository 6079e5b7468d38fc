#pragma once
/// One tunnelled connection, from accept to the summary line: PROXY header, connect with
/// failover, STARTTLS, TLS handshake and verification, then the half-close-aware relay.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <asio/awaitable.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/ip/tcp.hpp>

#include "cli/supervise.hpp"
#include "conf/tunnel_config.hpp"
#include "proxy_protocol.hpp"
#include "relay.hpp"
#include "tunnel/net/deadline.hpp"
#include "tunnel/net/session_registry.hpp"
#include "tunnel/net/stream_end.hpp"
#include "tunnel/net/tls_context.hpp"

namespace postern::tunnel {

/// A service as it runs: its configuration, TLS context and counters. Connections hold a
/// shared_ptr, so a reload never changes the settings of a connection already running.
struct service_runtime {
  conf::tunnel_service config;
  std::shared_ptr<net::tls_context> tls;
  std::atomic<std::uint32_t> active{0};
  std::atomic<std::uint32_t> next_target{0};

  /// Counts one more connection when max_connections allows it, at accept time (counting
  /// when the worker gets to it let bursts overshoot); the connection gives it back.
  bool try_acquire() {
    std::uint32_t n = active.load(std::memory_order_relaxed);
    while (n < config.max_connections)
      if (active.compare_exchange_weak(n, n + 1, std::memory_order_relaxed)) return true;
    return false;
  }
};

/// How a connection ended, for the summary line and --stdio's exit status.
enum class outcome {
  closed,          ///< both directions ended normally
  reset,           ///< a peer aborted
  timeout,         ///< a phase ran out of time (phase named in the reason)
  connect_failed,  ///< no target could be reached
  tls_failed,      ///< handshake or verification failed
  protocol_error,  ///< bad PROXY header, STARTTLS refused, ...
  error,           ///< local failure
  stopped,         ///< cancelled by shutdown
};
const char* to_string(outcome o);
/// sysexits code for --stdio: 0, 69 (unreachable), 75 (timeout), 76 (TLS/protocol), 70.
int exit_code_for(outcome o);

/// The connections alive in the process (all services, every configuration), for graceful
/// shutdown: counted, and cut when the grace period is over.
net::session_registry& live_connections();

class connection : public std::enable_shared_from_this<connection>, private relay_host {
 public:
  /// `client_fd` is the accepted socket; for --stdio, `client_fd` = 0 and `client_out_fd` = 1.
  /// The caller has counted it with service->try_acquire().
  connection(const asio::any_io_executor& ex, std::shared_ptr<service_runtime> service,
             int client_fd, int client_out_fd = -1);
  ~connection();

  /// Starts the connection; it keeps itself alive until it has logged its summary.
  void start();
  /// How it ended; set once the summary is logged.
  [[nodiscard]] std::optional<outcome> result() const {
    return finished_ ? outcome_ : std::nullopt;
  }

 private:
  enum class phase { proxy_header, connect, starttls, handshake, relay, linger };
  static const char* to_string(phase p);
  using clock = std::chrono::steady_clock;

  asio::awaitable<void> run(std::shared_ptr<connection> self);
  asio::awaitable<outcome> setup();
  asio::awaitable<outcome> read_proxy_header();
  asio::awaitable<outcome> connect_target();
  asio::awaitable<outcome> starttls_preamble();
  asio::awaitable<outcome> tls_handshake(net::stream_end& end);
  asio::awaitable<bool> write_all(net::stream_end& end, const std::string& data);
  asio::awaitable<bool> flush_all(net::stream_end& end);
  // relay_host: what the two relay directions use.
  [[nodiscard]] bool stopping() const override { return stopping_; }
  asio::awaitable<bool> wait_until(net::stream_end& end, net::io_want want) override;
  void abort(outcome o, const std::string& reason) override;
  void stop_both() override;
  void remark(const std::string& text) override;
  void active() override { last_activity_ = clock::now(); }
  void direction_done() override;
  /// Arms the deadline of the phase (in the relay: the idle and linger bounds).
  void watch();
  void on_deadline();
  /// Ends the connection now (shutdown after the grace period): outcome stopped, `reason`.
  void cut(const std::string& reason);
  /// A deadline passed or the connection was cut: `o`, `reason`, both directions stop and
  /// nothing more is watched.
  void end_now(outcome o, const std::string& reason);
  /// The completion handler of a part of this connection (a relay direction when `direction`).
  cli::supervised supervisor(const char* part, bool direction);
  void begin_phase(phase p, conf::duration budget);
  void finish();
  void fail(outcome o, std::string reason);
  /// The recorded outcome of a connection whose setup stopped.
  outcome aborted();
  void log_summary();
  std::string proxy_header_to_send() const;

  asio::any_io_executor executor_;
  std::shared_ptr<service_runtime> service_;
  const conf::tunnel_service& config_;
  std::string session_;
  net::stream_end client_;
  std::optional<net::stream_end> server_;
  net::deadline deadline_;
  std::unique_ptr<net::session_registry::membership> membership_;

  proxy_addresses client_address_;  ///< who connected, and where to (from a PROXY header if any)
  std::string peer_;                ///< client_address_ as text, for logs
  std::string target_;              ///< the target reached, for logs ("host:port")
  std::string target_host_;         ///< its host name, for verification and SNI
  bool finished_ = false;
  bool refused_real_client_ = false;  ///< the handshake refused a real TLS client
  std::string starttls_greeting_;
  net::peer_verdict verdict_;

  phase phase_ = phase::proxy_header;
  clock::time_point phase_deadline_;
  clock::time_point started_ = clock::now();
  clock::time_point last_activity_ = started_;
  clock::time_point first_direction_done_{};
  std::optional<relay_direction> up_;    ///< client -> target
  std::optional<relay_direction> down_;  ///< target -> client
  int open_directions_ = 0;
  bool stopping_ = false;
  bool timed_out_ = false;  ///< a phase deadline passed; the connection is ending
  bool stdio_ = false;
  std::optional<outcome> outcome_;
  std::string reason_;
};

}  // namespace postern::tunnel
