#pragma once
/// Signals of a long-running postern program: SIGHUP reloads (all or nothing: a reload that
/// fails keeps the running configuration), SIGTERM and SIGINT stop gracefully. Each step is
/// logged and told to systemd (Type=notify); a second SIGTERM/SIGINT exits at once. Handlers
/// run on the given event loop.

#include <functional>
#include <string>

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>

namespace postern::cli {

class service_signals {
 public:
  /// `reload` loads `config_file` and applies it, returning false (after logging every error)
  /// when it kept the running configuration; `stop` begins the graceful shutdown.
  service_signals(asio::io_context& ctx, std::string config_file, std::function<bool()> reload,
                  std::function<void()> stop);

 private:
  void arm();
  void on_signal(int signal);

  asio::signal_set signals_;
  std::string config_file_;
  std::function<bool()> reload_;
  std::function<void()> stop_;
  bool stopping_ = false;
};

}  // namespace postern::cli
