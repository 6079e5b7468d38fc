#pragma once
/// The forwarder's listeners and the runtime they hand sessions to. A reload builds a
/// whole new runtime (registry, TLS, audit file) and switches to it only if every part
/// loaded; sessions already running keep the runtime they started with.

#include <memory>
#include <string>
#include <vector>

#include <asio/io_context.hpp>

#include "cli/program.hpp"
#include "client_limits.hpp"
#include "relay.hpp"
#include "smtp_session.hpp"
#include "tunnel/net/listener_set.hpp"

namespace postern::forwarder {

/// Builds the runtime for a loaded configuration; errors name the file and problem.
std::shared_ptr<forwarder_runtime> build_runtime(asio::io_context& ctx,
                                                 const conf::forwarder_config& config, bool trace,
                                                 std::vector<std::string>& errors);

/// How postern-forwarder's configuration loads and is verified (TLS contexts, the users file
/// and the upstream pool, built as serving would build them): for its --check, its service
/// and `postern check`.
const cli::program_config<conf::forwarder_config>& forwarder_program();

class forwarder_server final : public cli::served<conf::forwarder_config> {
 public:
  /// `trace`: sessions log their dialogues (--trace).
  explicit forwarder_server(bool trace);
  ~forwarder_server() override;

  /// Builds the runtime of `config` and switches to it (see the other apply).
  bool apply(const conf::forwarder_config& config, std::vector<std::string>& errors) override;
  /// Switches to `rt`: listeners are opened/kept/closed to match its `listen`. On any error
  /// nothing changes.
  bool apply(std::shared_ptr<forwarder_runtime> rt, std::vector<std::string>& errors);
  /// Stops accepting; sessions get `grace` to finish, then the loop stops.
  void shutdown(conf::duration grace) override;
  asio::io_context& main_context() override { return ctx_; }
  void run() override { ctx_.run(); }
  void log_start(const conf::forwarder_config& config, const std::string& file) override;

 private:
  /// A connection accepted: a session, or a refusal (not allowed, over a limit).
  void admit(int fd);
  asio::awaitable<void> drain(conf::duration grace);

  void log_refusal(const session_peer& peer, const std::string& reason);

  /// Every session of every runtime; declared before the loop, whose end destroys them.
  net::session_registry sessions_;
  asio::io_context ctx_{1};
  bool trace_;
  std::shared_ptr<forwarder_runtime> runtime_;
  /// Sessions of every runtime (a reload does not reset them) and AUTH failures.
  std::shared_ptr<client_limits> limits_ = std::make_shared<client_limits>();
  std::uint64_t refused_ = 0;  ///< refusals not yet logged (at most one line per second)
  std::chrono::steady_clock::time_point last_refusal_log_{};
  net::listener_set listeners_{ctx_};
  bool stopping_ = false;
};

}  // namespace postern::forwarder
