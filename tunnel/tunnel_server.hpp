#pragma once
/// The running tunnel: one event loop per worker thread, listeners on the main loop, and
/// configuration reload that either applies completely or changes nothing.

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <asio/io_context.hpp>

#include "cli/program.hpp"
#include "connection.hpp"
#include "tunnel/net/listener_set.hpp"

namespace postern::tunnel {

/// Builds the runtime form of every service (TLS contexts loaded from disk). Errors name the
/// service and the problem; on any error the result is empty.
std::vector<std::shared_ptr<service_runtime>> build_services(const conf::tunnel_config& config,
                                                             std::vector<std::string>& errors);

/// How postern-tunnel's configuration loads and is verified (TLS files and contexts, built as
/// serving would build them): for its --check, its service and `postern check`.
const cli::program_config<conf::tunnel_config>& tunnel_program();

class tunnel_server final : public cli::served<conf::tunnel_config> {
 public:
  /// `threads` worker event loops (0 = one per core).
  explicit tunnel_server(unsigned threads);
  ~tunnel_server();

  /// Applies a configuration: new listeners are bound, kept ones take the new settings for
  /// new connections, removed ones stop. On any error nothing changes.
  bool apply(const conf::tunnel_config& config, std::vector<std::string>& errors) override;

  /// Stops accepting; connections get `grace` to finish, then everything stops.
  void shutdown(conf::duration grace) override;

  /// Runs the workers and the main loop until shutdown completes.
  void run() override;
  void log_start(const conf::tunnel_config& config, const std::string& file) override;

  asio::io_context& main_context() override { return main_; }
  [[nodiscard]] std::size_t worker_count() const { return workers_.size(); }

 private:
  struct gate;
  /// A connection accepted for `g`'s service: to a worker, or refused over max_connections.
  void admit(gate& g, int fd);
  asio::awaitable<void> drain(conf::duration grace);
  asio::io_context& next_worker();

  // Workers are declared first so that they outlive the main loop: its pending accepts hold
  // sockets of the workers, destroyed with it (the reverse order was a use-after-free).
  std::vector<std::unique_ptr<asio::io_context>> workers_;
  asio::io_context main_;
  std::vector<std::thread> threads_;
  net::listener_set listeners_{main_};
  std::size_t next_worker_ = 0;
  bool stopping_ = false;
  bool applied_ = false;  ///< a configuration runs: the next apply is a reload
};

}  // namespace postern::tunnel
