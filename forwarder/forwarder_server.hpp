#pragma once
/// The forwarder's listeners and the runtime they hand sessions to. A reload builds a
/// whole new runtime (registry, TLS, audit file) and switches to it only if every part
/// loaded; sessions already running keep the runtime they started with.

#include <memory>
#include <string>
#include <vector>

#include <asio/io_context.hpp>

#include "relay.hpp"

namespace postern::forwarder {

/// Builds the runtime for a loaded configuration; errors name the file and problem.
std::shared_ptr<forwarder_runtime> build_runtime(asio::io_context& ctx,
                                                 const conf::forwarder_config& config, bool trace,
                                                 std::vector<std::string>& errors);

/// Warnings every start and reload repeat (verification off, cleartext allowed).
void log_insecure_settings(const conf::forwarder_config& config);
/// The same warnings for one mailbox (or pseudo-mailbox: smarthost, fetch's [delivery]).
void log_insecure_mailbox(const conf::mailbox& m);

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
  asio::awaitable<void> drain(conf::duration grace);

  asio::io_context& ctx_;
  std::shared_ptr<forwarder_runtime> runtime_;
  std::vector<std::shared_ptr<listener>> listeners_;
  bool stopping_ = false;
};

}  // namespace postern::forwarder
