// postern-fetch: POP3 retrieval into the local mail system, never losing a message
// (the fetchmail replacement): one pass over the registry's mailboxes, or --daemon.
#include <unistd.h>

#include <climits>
#include <csignal>
#include <iostream>

#include <optional>
#include <random>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "cli/config_report.hpp"
#include "cli/core_dumps.hpp"
#include "cli/exit_codes.hpp"
#include "cli/log.hpp"
#include "cli/options.hpp"
#include "cli/service_manager.hpp"
#include "conf/fetch_config.hpp"
#include "fetch/fetch_run.hpp"
#include "forwarder/forwarder_server.hpp"
#include "postern/version.hpp"

namespace {

using namespace postern;
namespace lg = postern::log;

/// Warnings every start and reload repeat: verification off, cleartext allowed.
void log_insecure_settings(const conf::fetch_config& config) {
  for (const auto& m : config.registry.mailboxes)
    if (m.fetch) forwarder::log_insecure_mailbox(m);
  forwarder::log_insecure_mailbox(config.delivery);
}

/// The exit status of a run is its most serious mailbox's: what needs a person (a refusal
/// of us, 69, or of a message, 65) before what will pass by itself (75).
void escalate(int& code, int status) {
  auto rank = [](int c) {
    switch (c) {
      case exit_code::ok: return 0;
      case exit_code::tempfail: return 1;
      case exit_code::data: return 2;
      case exit_code::unavailable: return 3;
      default: return 4;  // software
    }
  };
  if (rank(status) > rank(code)) code = status;
}

/// Logs how one mailbox went; raises `code` to the run's exit status.
void report(const conf::mailbox& m, const fetch::mailbox_outcome& o, int& code) {
  if (o.result == fetch::mailbox_outcome::status::failed) {
    lg::error("fetch.failed", {{"mailbox", m.address}, {"error", o.error}});
    escalate(code, o.temporary ? exit_code::tempfail : exit_code::unavailable);
  } else if (o.result == fetch::mailbox_outcome::status::busy) {
    escalate(code, exit_code::tempfail);
  } else {
    lg::info("fetch.done", {{"mailbox", m.address},
                            {"delivered", o.delivered},
                            {"refused", o.failed_messages},
                            {"skipped", o.skipped},
                            {"deleted", o.deleted}});
    // A message the target refused for good stays on the server: not everything was fetched.
    if (o.failed_messages) escalate(code, exit_code::data);
  }
}

// Parameters by reference to objects that outlive the run (see relay_transaction::mail
// about GCC 12 and class-type coroutine parameters).
asio::awaitable<void> fetch_worker(const conf::fetch_config& config,
                                   const std::vector<const conf::mailbox*>& queue,
                                   std::size_t& next, const fetch::run_options& options,
                                   int& code) {
  while (next < queue.size()) {
    const conf::mailbox& m = *queue[next++];
    fetch::mailbox_outcome o = co_await fetch::fetch_mailbox(config, m, options);
    report(m, o, code);
  }
}

/// One pass: up to `concurrency` mailboxes at a time (one at a time when a mailbox delivers
/// to standard output, where messages must not interleave).
asio::awaitable<int> run_all(const conf::fetch_config& config, const std::string& only,
                             const fetch::run_options& options) {
  int code = exit_code::ok;
  std::vector<const conf::mailbox*> queue;
  bool matched = only.empty(), to_stdout = false;
  for (const auto& m : config.registry.mailboxes) {
    if (!only.empty() && !conf::same_address(m.address, only)) continue;
    matched = true;
    if (!m.fetch) continue;
    queue.push_back(&m);
    auto target = config.target_for(m);
    if (target && target->kind == conf::target_kind::stdout_mbox) to_stdout = true;
  }
  if (!matched) {
    lg::error("fetch.failed", {{"mailbox", only}, {"error", "not in the registry"}});
    co_return exit_code::usage;
  }
  auto ex = co_await asio::this_coro::executor;
  std::size_t next = 0;
  std::size_t running = std::min<std::size_t>(to_stdout ? 1 : config.concurrency, queue.size());
  asio::steady_timer all_done(ex, asio::steady_timer::time_point::max());
  for (std::size_t i = running; i > 0; --i)
    asio::co_spawn(ex, fetch_worker(config, queue, next, options, code), [&](std::exception_ptr e) {
      if (e) escalate(code, exit_code::software);
      if (--running == 0) all_done.cancel();
    });
  while (running > 0)
    co_await all_done.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
  co_return code;
}

/// --daemon: a pass every `interval` (10% jitter, so many hosts do not poll a provider in
/// step), at once on SIGUSR1, after reloading the configuration on SIGHUP (a configuration
/// that fails to load is reported and the old one kept); SIGTERM/SIGINT end it, after the pass
/// in progress if there is one.
asio::awaitable<int> daemon_loop(const std::string& file, std::optional<conf::fetch_config>& config,
                                 const std::string& only, const fetch::run_options& options) {
  auto ex = co_await asio::this_coro::executor;
  asio::signal_set signals(ex, SIGUSR1, SIGHUP, SIGTERM);
  signals.add(SIGINT);
  asio::steady_timer timer(ex);
  int last_signal = 0;
  std::mt19937 rng(std::random_device{}());
  cli::notify_ready("fetching every " + conf::format_duration(config->interval));
  for (;;) {
    co_await run_all(*config, only, options);
    if (last_signal == SIGTERM || last_signal == SIGINT) co_return exit_code::ok;
    last_signal = 0;
    const auto interval = config->interval;
    std::uniform_int_distribution<long long> jitter(-interval.count() / 10, interval.count() / 10);
    timer.expires_after(interval + conf::duration(jitter(rng)));
    signals.async_wait([&](std::error_code ec, int sig) {
      if (!ec) last_signal = sig;
      timer.cancel();
    });
    co_await timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    signals.cancel();
    lg::info("daemon.wake", {{"reason", last_signal == 0         ? "interval"
                                        : last_signal == SIGUSR1 ? "SIGUSR1"
                                        : last_signal == SIGHUP  ? "SIGHUP"
                                                                 : "stop"}});
    if (last_signal == SIGTERM || last_signal == SIGINT) co_return exit_code::ok;
    if (last_signal == SIGHUP) {
      conf::diagnostics diags;
      auto fresh = conf::load_fetch_config(file, diags);
      cli::log_diagnostics(diags);
      if (fresh) {
        config = std::move(fresh);
        lg::info("reload.done", {{"config", file}});
        log_insecure_settings(*config);
      } else {
        lg::error("reload.failed", {{"config", file}, {"effect", "the old configuration stays"}});
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  cli::forbid_core_dumps();
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{
      "postern-fetch: retrieve POP3 mailboxes of the registry into the local mail "
      "system; a message is deleted (if ever) only after it was delivered and recorded.",
      "postern-fetch"};
  app.footer(
      "Exit status: 0 everything fetched, 75 try again later (a mailbox was busy or "
      "unreachable, or delivery was deferred), 65 the target refused a message for good (it "
      "stays on the server), 69 a mailbox refused us (login, TLS, no UIDL), 64 usage, 78 "
      "configuration error. See postern-fetch(1) and postern-fetch.toml(5).");
  cli::common_options common;
  cli::add_common_options(app, common, POSTERN_SYSCONFDIR "/fetch.toml");
  std::string only;
  fetch::run_options options;
  app.add_option("--mailbox", only, "Fetch only this mailbox (its address in the registry)");
  app.add_flag("--dry-run", options.dry_run, "List what would be fetched; change nothing");
  app.add_flag("--retry-failed", options.retry_failed,
               "Try again messages whose delivery failed permanently");
  bool daemon = false;
  app.add_flag("--daemon", daemon,
               "Keep running: a pass every `interval`, at once on SIGUSR1, reload on SIGHUP");
  if (auto stop = cli::parse_command_line(app, argc, argv)) return *stop;
  cli::apply_logging(common);
  conf::diagnostics diags;
  auto config = conf::load_fetch_config(common.config, diags);
  if (!config || common.check) cli::print_diagnostics(diags, std::cerr);
  if (!config) return exit_code::config;
  if (common.check) {
    std::cout << "configuration OK\n";
    return exit_code::ok;
  }
  cli::log_diagnostics(diags);
  log_insecure_settings(*config);
  char host[HOST_NAME_MAX + 1] = {};
  ::gethostname(host, sizeof host - 1);
  options.hostname = host;
  options.trace = common.trace;
  forwarder::audit_log audit;
  std::string error;
  if (!audit.open(config->audit_file, error)) {
    std::cerr << "postern-fetch: " << error << "\n";
    return exit_code::config;
  }
  options.audit = &audit;
  asio::io_context ctx(1);
  int code = exit_code::software;
  auto done = [&](std::exception_ptr e, int rc) { code = e ? exit_code::software : rc; };
  if (daemon)
    asio::co_spawn(ctx, daemon_loop(common.config, config, only, options), done);
  else
    asio::co_spawn(ctx, run_all(*config, only, options), done);
  ctx.run();
  return code;
}
