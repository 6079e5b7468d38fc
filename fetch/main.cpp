// postern-fetch: POP3 retrieval into the local mail system, never losing a message
// (the fetchmail replacement): one pass over the registry's mailboxes, or --daemon.
#include <malloc.h>
#include <unistd.h>

#include <climits>
#include <iostream>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "cli/exit_codes.hpp"
#include "cli/log.hpp"
#include "cli/options.hpp"
#include "cli/program.hpp"
#include "cli/supervise.hpp"
#include "conf/fetch_config.hpp"
#include "conf/insecure.hpp"
#include "fetch/daemon.hpp"
#include "fetch/fetch_run.hpp"
#include "fetch/run_all.hpp"
#include "postern/version.hpp"

namespace {

using namespace postern;
namespace lg = postern::log;

struct command_line {
  cli::common_options common;
  std::string only;
  fetch::run_options options;
  std::string first_run;
  bool daemon = false;
  std::string grace_text = "30s";
};

void add_options(CLI::App& app, command_line& c) {
  app.footer(
      "Exit status: 0 everything fetched, 75 try again later (a mailbox was busy or "
      "unreachable, or delivery was deferred), 65 the target refused a message for good (it "
      "stays on the server), 69 a mailbox refused us (login, TLS, no UIDL, a broken listing), "
      "64 usage, 78 configuration error, or a kept mailbox without state that needs "
      "--first-run. See postern-fetch(1) and postern-fetch.toml(5).");
  cli::add_common_options(app, c.common, POSTERN_SYSCONFDIR "/fetch.toml");
  app.add_option("--mailbox", c.only, "Fetch only this mailbox (its address in the registry)");
  app.add_flag("--dry-run", c.options.dry_run, "List what would be fetched; change nothing");
  app.add_flag("--retry-failed", c.options.retry_failed,
               "Try again messages whose delivery failed permanently");
  app.add_option("--first-run", c.first_run,
                 "For a kept mailbox with no state whose server holds mail (a first setup, a "
                 "lost state): all (deliver it), none (record it as seen), since:YYYY-MM-DD "
                 "(deliver what is dated since then)")
      ->option_text("CHOICE");
  app.add_flag("--daemon", c.daemon,
               "Keep running: each mailbox every `interval`, all at once on SIGUSR1, reload on "
               "SIGHUP");
  app.add_option("--grace", c.grace_text,
                 "--daemon, on SIGTERM/SIGINT: how long passes in progress may take to finish")
      ->capture_default_str();
}

/// One pass over the mailboxes, or the daemon; the exit status.
int fetch_all(const command_line& c, conf::fetch_config config, fetch::run_options options,
              conf::duration grace) {
  asio::io_context ctx(1);
  if (c.daemon) {
    fetch::fetch_daemon d(ctx, c.common.config, std::move(config), c.only, options, grace);
    if (!d.start()) return exit_code::usage;
    ctx.run();
    lg::info("stop", {});
    return exit_code::ok;
  }
  int code = exit_code::software;
  asio::co_spawn(ctx, fetch::run_all(config, c.only, options), [&](std::exception_ptr e, int rc) {
    if (e) lg::error("fetch.crashed", {{"error", cli::describe(e)}});
    code = e ? exit_code::software : rc;
  });
  ctx.run();
  return code;
}

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
  command_line c;
  add_options(app, c);
  if (auto stop = cli::parse_command_line(app, argc, argv)) return *stop;
  cli::apply_logging(c.common);
  std::string error;
  fetch::run_options options = c.options;
  if (!c.first_run.empty()) {
    auto choice = fetch::parse_first_run(c.first_run, error);
    if (!choice) {
      std::cerr << "postern-fetch: " << error << "\n";
      return exit_code::usage;
    }
    options.first_run = *choice;
  }
  auto grace = cli::parse_grace(c.grace_text, "postern-fetch");
  if (!grace) return exit_code::usage;
  const auto& program = fetch::fetch_program();
  if (c.common.check) return cli::check_configuration(program, c.common.config);
  auto config = cli::load_configuration(program, c.common.config);
  if (!config) return exit_code::config;
  cli::log_insecure(conf::insecure_settings(*config));
  char host[HOST_NAME_MAX + 1] = {};
  ::gethostname(host, sizeof host - 1);
  options.hostname = host;
  options.trace = c.common.trace;
  cli::audit_log audit;
  if (!audit.open(config->audit_file, error)) {
    std::cerr << "postern-fetch: " << error << "\n";
    return exit_code::config;
  }
  options.audit = &audit;
  return fetch_all(c, std::move(*config), options, *grace);
}
