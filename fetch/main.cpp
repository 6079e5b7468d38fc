// postern-fetch: POP3 retrieval into the local mail system, never losing a message
// (the fetchmail replacement): one pass over the registry's mailboxes, or --daemon.
#include <malloc.h>
#include <unistd.h>

#include <cctype>
#include <climits>
#include <csignal>
#include <iostream>
#include <map>

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
#include "cli/exit_codes.hpp"
#include "cli/log.hpp"
#include "cli/options.hpp"
#include "cli/program.hpp"
#include "cli/service_manager.hpp"
#include "cli/supervise.hpp"
#include "conf/fetch_config.hpp"
#include "conf/insecure.hpp"
#include "fetch/fetch_run.hpp"
#include "postern/version.hpp"

namespace {

using namespace postern;
namespace lg = postern::log;

/// The exit status of a run is its most serious mailbox's: what needs a person (a refusal
/// of us, 69, or of a message, 65) before what will pass by itself (75).
void escalate(int& code, int status) {
  auto rank = [](int c) {
    switch (c) {
      case exit_code::ok: return 0;
      case exit_code::tempfail: return 1;
      case exit_code::data: return 2;
      case exit_code::unavailable: return 3;
      case exit_code::config: return 4;
      default: return 5;  // software
    }
  };
  if (rank(status) > rank(code)) code = status;
}

/// Logs how one mailbox went; raises `code` to the run's exit status.
void report(const conf::mailbox& m, const fetch::mailbox_outcome& o, int& code) {
  if (o.result == fetch::mailbox_outcome::status::failed) {
    if (o.needs_decision) {
      lg::error("fetch.first_run_needed", {{"mailbox", m.address}, {"error", o.error}});
      escalate(code, exit_code::config);
    } else if (o.temporary) {
      // It will pass by itself (or by the next run): a warning, not an error.
      lg::warn("fetch.deferred", {{"mailbox", m.address}, {"error", o.error}});
      escalate(code, exit_code::tempfail);
    } else {
      lg::error("fetch.failed", {{"mailbox", m.address}, {"error", o.error}});
      escalate(code, exit_code::unavailable);
    }
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
  if (o.held > 0)
    lg::warn("fetch.held", {{"mailbox", m.address},
                            {"messages", o.held},
                            {"why",
                             "refused for good by the target in an earlier run; they stay "
                             "on the server"},
                            {"retry", "postern-fetch --retry-failed --mailbox " + m.address}});
}

// The queue, its cursor and the exit code are shared by all the workers of one run.
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

/// The mailboxes a run fetches (all that fetch, or the one --mailbox names); false when
/// --mailbox names none. `to_stdout`: some mailbox delivers to standard output.
bool mailboxes_to_fetch(const conf::fetch_config& config, const std::string& only,
                        std::vector<const conf::mailbox*>& out, bool& to_stdout) {
  bool matched = only.empty();
  to_stdout = false;
  for (const auto& m : config.registry.mailboxes) {
    if (!only.empty() && !conf::same_address(m.address, only)) continue;
    matched = true;
    if (!m.fetch) continue;
    out.push_back(&m);
    auto target = config.target_for(m);
    if (target && target->kind == conf::target_kind::stdout_mbox) to_stdout = true;
  }
  return matched;
}

/// One pass: up to `concurrency` mailboxes at a time (one at a time when a mailbox delivers
/// to standard output, where messages must not interleave).
asio::awaitable<int> run_all(const conf::fetch_config& config, const std::string& only,
                             const fetch::run_options& options) {
  int code = exit_code::ok;
  std::vector<const conf::mailbox*> queue;
  bool to_stdout = false;
  if (!mailboxes_to_fetch(config, only, queue, to_stdout)) {
    lg::error("fetch.failed", {{"mailbox", only}, {"error", "not in the registry"}});
    co_return exit_code::usage;
  }
  auto ex = co_await asio::this_coro::executor;
  std::size_t next = 0;
  std::size_t running = std::min<std::size_t>(to_stdout ? 1 : config.concurrency, queue.size());
  asio::steady_timer all_done(ex, asio::steady_timer::time_point::max());
  for (std::size_t i = running; i > 0; --i)
    asio::co_spawn(ex, fetch_worker(config, queue, next, options, code), [&](std::exception_ptr e) {
      if (e) {
        lg::error("fetch.crashed", {{"error", cli::describe(e)}});
        escalate(code, exit_code::software);
      }
      if (--running == 0) all_done.cancel();
    });
  while (running > 0)
    co_await all_done.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
  co_return code;
}

/// --daemon: every mailbox on its own schedule, a pass every `interval` (10% jitter, so many
/// hosts do not poll a provider in step), at most `concurrency` at a time: a mailbox whose
/// server stalls holds only itself. SIGUSR1 fetches every mailbox now; SIGHUP reloads (a
/// configuration that fails to load is reported and the old one kept; mailboxes added start,
/// removed ones stop after their pass); SIGTERM/SIGINT stop: passes in progress get `grace`
/// to finish (what is not finished then stays on the server, as after a kill).
class fetch_daemon {
 public:
  fetch_daemon(asio::io_context& ctx, std::string file, conf::fetch_config config, std::string only,
               const fetch::run_options& options, conf::duration grace)
      : ctx_(ctx),
        file_(std::move(file)),
        config_(std::make_shared<const conf::fetch_config>(std::move(config))),
        only_(std::move(only)),
        options_(options),
        grace_(grace),
        signals_(ctx, SIGUSR1, SIGHUP, SIGTERM),
        grace_timer_(ctx) {
    signals_.add(SIGINT);
  }

  /// Starts the loops; the io_context runs until every loop has ended.
  bool start() {
    if (!start_loops()) return false;
    arm_signals();
    cli::notify_ready("fetching every " + conf::format_duration(config_->interval));
    return true;
  }

 private:
  struct loop {
    explicit loop(asio::io_context& ctx) : timer(ctx) {}
    asio::steady_timer timer;  ///< the wait for the next pass, or for a free slot
    bool waiting_for_slot = false;
  };

  bool start_loops() {
    std::vector<const conf::mailbox*> boxes;
    bool to_stdout = false;
    if (!mailboxes_to_fetch(*config_, only_, boxes, to_stdout)) {
      lg::error("fetch.failed", {{"mailbox", only_}, {"error", "not in the registry"}});
      return false;
    }
    slots_ = to_stdout ? 1 : config_->concurrency;
    for (const auto* m : boxes) {
      auto [it, added] = loops_.try_emplace(lower(m->address), nullptr);
      if (!added) continue;
      it->second = std::make_unique<loop>(ctx_);
      asio::co_spawn(
          ctx_, mailbox_loop(it->first, *it->second),
          cli::supervised{"fetch.crashed", "", [this, key = it->first](const std::string&) {
                            loops_.erase(key);
                            maybe_done();
                          }});
    }
    return true;
  }

  static std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }

  void wake_all() {
    for (auto& [key, l] : loops_) l->timer.cancel();
  }

  void free_slot() {
    --running_;
    for (auto& [key, l] : loops_)
      if (l->waiting_for_slot) l->timer.cancel();
  }

  asio::awaitable<void> wait(loop& l, std::optional<conf::duration> d) {
    l.timer.expires_after(d.value_or(std::chrono::hours(24 * 365)));
    co_await l.timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
  }

  // `key` by reference: the key of the loop's own map entry, alive while the loop runs (and
  // copied before the entry is erased).
  asio::awaitable<void> mailbox_loop(const std::string& key, loop& l) {
    while (!stopping_) {
      while (running_ >= slots_ && !stopping_) {
        l.waiting_for_slot = true;
        co_await wait(l, std::nullopt);
        l.waiting_for_slot = false;
      }
      if (stopping_) break;
      auto config = config_;  // this pass keeps the configuration it started with
      const conf::mailbox* m = config->registry.find(key);
      if (!m || !m->fetch) break;  // removed by a reload
      ++running_;
      fetch::mailbox_outcome o = co_await fetch::fetch_mailbox(*config, *m, options_);
      free_slot();
      int ignored = 0;
      report(*m, o, ignored);
      if (stopping_) break;
      const auto interval = config->interval;
      std::uniform_int_distribution<long long> jitter(-interval.count() / 10,
                                                      interval.count() / 10);
      co_await wait(l, interval + conf::duration(jitter(rng_)));
    }
    const std::string done = key;  // erasing the entry frees `key` and `l`
    loops_.erase(done);
    maybe_done();
  }

  void maybe_done() {
    if (!stopping_ || !loops_.empty()) return;
    // Nothing is left to do: let the loop run out of work.
    std::error_code ignored;
    signals_.cancel(ignored);
    grace_timer_.cancel();
  }

  void arm_signals() {
    signals_.async_wait([this](std::error_code ec, int sig) {
      if (ec) return;
      on_signal(sig);
      if (!(stopping_ && loops_.empty())) arm_signals();
    });
  }

  void on_signal(int sig) {
    if (sig == SIGUSR1) {
      lg::info("daemon.wake", {{"reason", "SIGUSR1"}});
      wake_all();
    } else if (sig == SIGHUP) {
      reload();
    } else if (stopping_) {
      lg::warn("signal",
               {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}, {"action", "exit now"}});
      std::_Exit(0);
    } else {
      stopping_ = true;
      lg::info("signal", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"},
                          {"action", "stop after the passes in progress"},
                          {"grace", conf::format_duration(grace_)},
                          {"running", running_}});
      cli::notify_stopping();
      wake_all();
      grace_timer_.expires_after(grace_);
      grace_timer_.async_wait([this](std::error_code ec) {
        if (ec) return;
        lg::warn("shutdown.cut",
                 {{"mailboxes", running_}, {"effect", "the messages in hand stay on the server"}});
        ctx_.stop();
      });
      maybe_done();
    }
  }

  void reload() {
    cli::notify_reloading();
    conf::diagnostics diags;
    auto fresh = conf::load_fetch_config(file_, diags);
    cli::log_diagnostics(diags);
    if (fresh) {
      config_ = std::make_shared<const conf::fetch_config>(std::move(*fresh));
      lg::info("reload.done", {{"config", file_}});
      cli::log_insecure(conf::insecure_settings(*config_));
      start_loops();
    } else {
      lg::error("reload.failed", {{"config", file_}, {"effect", "the old configuration stays"}});
    }
    // A pass now, as after SIGUSR1: mailboxes removed notice it, the others fetch with the
    // settings now in force.
    wake_all();
    cli::notify_ready("fetching every " + conf::format_duration(config_->interval));
  }

  asio::io_context& ctx_;
  std::string file_;
  std::shared_ptr<const conf::fetch_config> config_;
  std::string only_;
  const fetch::run_options& options_;
  conf::duration grace_;
  asio::signal_set signals_;
  asio::steady_timer grace_timer_;
  std::map<std::string, std::unique_ptr<loop>> loops_;  ///< by lower-case address
  std::size_t running_ = 0, slots_ = 1;
  bool stopping_ = false;
  std::mt19937 rng_{std::random_device{}()};
};

}  // namespace

int main(int argc, char** argv) {
  cli::start_program();
  // Listings and states of large mailboxes are the big allocations here, and short-lived:
  // with a fixed threshold they are mapped and unmapped whole, so memory goes back to the
  // system when a mailbox is done instead of staying with the process (glibc's threshold
  // otherwise grows to 32 MiB and keeps freed blocks resident).
  ::mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
  CLI::App app{
      "postern-fetch: retrieve POP3 mailboxes of the registry into the local mail "
      "system; a message is deleted (if ever) only after it was delivered and recorded.",
      "postern-fetch"};
  app.footer(
      "Exit status: 0 everything fetched, 75 try again later (a mailbox was busy or "
      "unreachable, or delivery was deferred), 65 the target refused a message for good (it "
      "stays on the server), 69 a mailbox refused us (login, TLS, no UIDL, a broken listing), "
      "64 usage, 78 configuration error, or a kept mailbox without state that needs "
      "--first-run. See postern-fetch(1) and postern-fetch.toml(5).");
  cli::common_options common;
  cli::add_common_options(app, common, POSTERN_SYSCONFDIR "/fetch.toml");
  std::string only;
  fetch::run_options options;
  app.add_option("--mailbox", only, "Fetch only this mailbox (its address in the registry)");
  app.add_flag("--dry-run", options.dry_run, "List what would be fetched; change nothing");
  app.add_flag("--retry-failed", options.retry_failed,
               "Try again messages whose delivery failed permanently");
  std::string first_run;
  app.add_option("--first-run", first_run,
                 "For a kept mailbox with no state whose server holds mail (a first setup, a "
                 "lost state): all (deliver it), none (record it as seen), since:YYYY-MM-DD "
                 "(deliver what is dated since then)")
      ->option_text("CHOICE");
  bool daemon = false;
  app.add_flag("--daemon", daemon,
               "Keep running: each mailbox every `interval`, all at once on SIGUSR1, reload on "
               "SIGHUP");
  std::string grace_text = "30s";
  app.add_option("--grace", grace_text,
                 "--daemon, on SIGTERM/SIGINT: how long passes in progress may take to finish")
      ->capture_default_str();
  if (auto stop = cli::parse_command_line(app, argc, argv)) return *stop;
  cli::apply_logging(common);
  std::string error;
  if (!first_run.empty()) {
    auto choice = fetch::parse_first_run(first_run, error);
    if (!choice) {
      std::cerr << "postern-fetch: " << error << "\n";
      return exit_code::usage;
    }
    options.first_run = *choice;
  }
  auto grace = cli::parse_grace(grace_text, "postern-fetch");
  if (!grace) return exit_code::usage;
  const cli::program_config<conf::fetch_config> program{conf::load_fetch_config, {}};
  if (common.check) return cli::check_configuration(program, common.config);
  auto config = cli::load_configuration(program, common.config);
  if (!config) return exit_code::config;
  cli::log_insecure(conf::insecure_settings(*config));
  char host[HOST_NAME_MAX + 1] = {};
  ::gethostname(host, sizeof host - 1);
  options.hostname = host;
  options.trace = common.trace;
  cli::audit_log audit;
  if (!audit.open(config->audit_file, error)) {
    std::cerr << "postern-fetch: " << error << "\n";
    return exit_code::config;
  }
  options.audit = &audit;
  asio::io_context ctx(1);
  if (daemon) {
    fetch_daemon d(ctx, common.config, std::move(*config), only, options, *grace);
    if (!d.start()) return exit_code::usage;
    ctx.run();
    lg::info("stop", {});
    return exit_code::ok;
  }
  int code = exit_code::software;
  asio::co_spawn(ctx, run_all(*config, only, options), [&](std::exception_ptr e, int rc) {
    if (e) lg::error("fetch.crashed", {{"error", cli::describe(e)}});
    code = e ? exit_code::software : rc;
  });
  ctx.run();
  return code;
}
