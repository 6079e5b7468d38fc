#pragma once
#include <memory>
#include <string>

#include <asio/io_context.hpp>

#include "conf/fetch_config.hpp"
#include "conf/units.hpp"
#include "fetch/fetch_run.hpp"

namespace postern::fetch {

/// --daemon: every mailbox on its own schedule, a pass every `interval` (10% jitter, so many
/// hosts do not poll a provider in step), at most `concurrency` at a time: a mailbox whose
/// server stalls holds only itself. SIGUSR1 fetches every mailbox now; SIGHUP reloads (a
/// configuration that fails to load is reported and the old one kept; mailboxes added start,
/// removed ones stop after their pass); SIGTERM/SIGINT stop: passes in progress get `grace`
/// to finish (what is not finished then stays on the server, as after a kill).
class fetch_daemon {
 public:
  fetch_daemon(asio::io_context& ctx, std::string file, conf::fetch_config config, std::string only,
               const run_options& options, conf::duration grace);
  ~fetch_daemon();
  /// Starts the loops; the io_context runs until every loop has ended. False when --mailbox
  /// names no mailbox of the registry.
  bool start();

 private:
  class impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace postern::fetch
