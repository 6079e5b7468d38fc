#include "run_all.hpp"

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "cli/exit_codes.hpp"
#include "cli/log.hpp"
#include "cli/supervise.hpp"

namespace postern::fetch {

namespace lg = postern::log;

namespace {

// The queue, its cursor and the exit code are shared by all the workers of one run.
asio::awaitable<void> fetch_worker(const conf::fetch_config& config,
                                   const std::vector<const conf::mailbox*>& queue,
                                   std::size_t& next, const run_options& options, int& code) {
  while (next < queue.size()) {
    const conf::mailbox& m = *queue[next++];
    mailbox_outcome o = co_await fetch_mailbox(config, m, options);
    report(m, o, code);
  }
}

}  // namespace

const cli::program_config<conf::fetch_config>& fetch_program() {
  static const cli::program_config<conf::fetch_config> program{conf::load_fetch_config, {}};
  return program;
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
      case exit_code::config: return 4;
      default: return 5;  // software
    }
  };
  if (rank(status) > rank(code)) code = status;
}

/// Logs how one mailbox went; raises `code` to the run's exit status.
void report(const conf::mailbox& m, const mailbox_outcome& o, int& code) {
  if (o.result == mailbox_outcome::status::failed) {
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
  } else if (o.result == mailbox_outcome::status::busy) {
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
                             const run_options& options) {
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

}  // namespace postern::fetch
