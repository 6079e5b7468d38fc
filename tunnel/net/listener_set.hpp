#pragma once
/// The listening side of every postern server: listeners kept in step with the configuration
/// (a kept address keeps its socket and takes the new handler, a new one is bound, a removed
/// one closed; on any error nothing changes), and one accept loop per listener that hands each
/// connection on, backs off exponentially when accepting fails (out of descriptors) and never
/// dies silently. The tunnel and the forwarder differ only in the handler.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>

#include "conf/endpoint.hpp"
#include "conf/units.hpp"

namespace postern::net {

struct listen_spec {
  conf::address address;
  /// The key of the configuration that names the address ("accept", "listen"), for errors.
  std::string key;
  /// Whose address it is, for errors ("service smtps"), or "".
  std::string owner;
  /// Takes each accepted connection (close-on-exec is set); runs on the set's loop.
  std::function<void(int fd)> accepted;
};

class listener_set {
 public:
  explicit listener_set(asio::io_context& ctx);
  ~listener_set();
  listener_set(const listener_set&) = delete;
  listener_set& operator=(const listener_set&) = delete;

  /// Makes the set match `specs` (see above); errors name the address. New listeners start
  /// accepting once everything is bound.
  bool reconcile(std::vector<listen_spec> specs, std::vector<std::string>& errors);
  /// Stops accepting everywhere (shutdown); the sockets are closed.
  void close_all();

  /// The longest pause between two failed accepts.
  static constexpr std::chrono::milliseconds max_backoff{2000};

 private:
  struct listener;
  void start_accepting(std::shared_ptr<listener> l);
  asio::awaitable<void> accept_loop(std::shared_ptr<listener> l);

  asio::io_context& ctx_;
  std::vector<std::shared_ptr<listener>> listeners_;
  bool closed_ = false;
};

}  // namespace postern::net
