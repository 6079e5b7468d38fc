#include "service_signals.hpp"

#include <csignal>
#include <cstdlib>

#include "log.hpp"
#include "service_manager.hpp"

namespace postern::cli {

service_signals::service_signals(asio::io_context& ctx, std::string config_file,
                                 std::function<bool()> reload, std::function<void()> stop)
    : signals_(ctx, SIGHUP, SIGTERM, SIGINT),
      config_file_(std::move(config_file)),
      reload_(std::move(reload)),
      stop_(std::move(stop)) {
  arm();
}

void service_signals::arm() {
  signals_.async_wait([this](const std::error_code& ec, int signal) {
    if (!ec) on_signal(signal);
  });
}

void service_signals::on_signal(int signal) {
  if (signal != SIGHUP) {
    const char* name = signal == SIGTERM ? "SIGTERM" : "SIGINT";
    if (stopping_) {
      // A second request to stop: the operator does not want to wait for the grace period.
      log::warn("signal", {{"signal", name}, {"action", "exit now"}});
      std::_Exit(0);
    }
    stopping_ = true;
    log::info("signal", {{"signal", name}, {"action", "graceful shutdown"}});
    notify_stopping();
    stop_();
    arm();
    return;
  }
  notify_reloading();
  log::info("reload.start", {{"config", config_file_}});
  if (reload_())
    log::info("reload.done", {{"config", config_file_}});
  else
    log::error("reload.failed",
               {{"config", config_file_}, {"action", "previous configuration kept"}});
  notify_ready("serving");
  arm();
}

}  // namespace postern::cli
