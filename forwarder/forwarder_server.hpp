#pragma once
/// The forwarder's listeners and the runtime they hand sessions to. A reload builds a
/// whole new runtime (registry, TLS, audit file) and switches to it only if every part
/// loaded; sessions already running keep the runtime they started with.

#include <memory>
#include <string>
#include <vector>

#include <asio/io_context.hpp>

#include "client_limits.hpp"
#include "relay.hpp"
#include "smtp_session.hpp"

namespace postern::forwarder {

/// Builds the runtime for a loaded configuration; errors name the file and problem.
std::shared_ptr<forwarder_runtime> build_runtime(asio::io_context& ctx,
                                                 const conf::forwarder_config& config, bool trace,
                                                 std::vector<std::string>& errors);

class forwarder_server {
 public:
  explicit forwarder_server(asio::io_context& ctx);
  ~forwarder_server();
  /// Switches to `rt`: listeners are opened/kept/closed to match its `listen`. On any error
  /// nothing changes.
  bool apply(std::shared_ptr<forwarder_runtime> rt, std::vector<std::string>& errors);
  /// Stops accepting; sessions get `grace` to finish, then the loop stops.
  void shutdown(conf::duration grace);

 private:
  struct listener;
  asio::awaitable<void> accept_loop(std::shared_ptr<listener> l);
  void start_accepting(std::shared_ptr<listener> l);
  asio::awaitable<void> drain(conf::duration grace);

  void log_refusal(const session_peer& peer, const std::string& reason);

  asio::io_context& ctx_;
  std::shared_ptr<forwarder_runtime> runtime_;
  /// Sessions of every runtime (a reload does not reset them) and AUTH failures.
  std::shared_ptr<client_limits> limits_ = std::make_shared<client_limits>();
  std::uint64_t refused_ = 0;  ///< refusals not yet logged (at most one line per second)
  std::chrono::steady_clock::time_point last_refusal_log_{};
  std::vector<std::shared_ptr<listener>> listeners_;
  bool stopping_ = false;
};

}  // namespace postern::forwarder
