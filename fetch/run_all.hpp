#pragma once
/// One pass of postern-fetch over the registry's mailboxes, and how each mailbox's outcome
/// is logged and ranked into the exit status (shared by the one-shot run and --daemon).

#include <string>
#include <vector>

#include <asio/awaitable.hpp>

#include "cli/program.hpp"
#include "conf/fetch_config.hpp"
#include "fetch/fetch_run.hpp"

namespace postern::fetch {

/// How postern-fetch's configuration loads (for its --check, its runs and `postern check`).
const cli::program_config<conf::fetch_config>& fetch_program();

/// The exit status of a run is its most serious mailbox's: what needs a person (a refusal
/// of us, 69, or of a message, 65) before what will pass by itself (75).
void escalate(int& code, int status);

/// Logs how one mailbox went; raises `code` to the run's exit status.
void report(const conf::mailbox& m, const mailbox_outcome& o, int& code);

/// The mailboxes a run fetches (all that fetch, or the one --mailbox names); false when
/// --mailbox names none. `to_stdout`: some mailbox delivers to standard output.
bool mailboxes_to_fetch(const conf::fetch_config& config, const std::string& only,
                        std::vector<const conf::mailbox*>& out, bool& to_stdout);

/// One pass: up to `concurrency` mailboxes at a time (one at a time when a mailbox delivers
/// to standard output, where messages must not interleave); returns the exit status.
asio::awaitable<int> run_all(const conf::fetch_config& config, const std::string& only,
                             const run_options& options);

}  // namespace postern::fetch
