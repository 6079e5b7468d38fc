#pragma once
/// One pass over one mailbox: lock its state, log in, list with UIDL, and for each new message
/// deliver -> record -> DELE (unless kept). Mail is never lost: a failure at any point leaves
/// the message on the server; a duplicate is possible only between delivery and the record.
/// A server without UIDL is fetched only with keep = false, one session per message.

#include <cstdint>
#include <string>

#include <asio/awaitable.hpp>

#include "cli/audit_log.hpp"
#include "conf/fetch_config.hpp"
#include "first_run.hpp"

namespace postern::fetch {

struct run_options {
  bool dry_run = false;        ///< list what would be fetched, change nothing
  bool retry_failed = false;   ///< try again messages whose delivery failed permanently
  first_run_choice first_run;  ///< for a kept mailbox with no state whose server holds mail
  bool trace = false;
  std::string hostname;             ///< for the Received: header
  int stdout_fd = 1;                ///< the "-" target
  cli::audit_log* audit = nullptr;  ///< one JSON line per message, when configured
};

struct mailbox_outcome {
  enum class status { ok, busy, failed };
  status result = status::ok;
  bool temporary = false;       ///< failed, but a later run may succeed
  bool needs_decision = false;  ///< failed until the admin chooses (--first-run)
  std::uint32_t delivered = 0, skipped = 0, deleted = 0, failed_messages = 0;
  std::uint32_t held = 0;   ///< refused for good earlier, still on the server
  std::uint32_t moved = 0;  ///< IMAP: moved to another folder (after = "move:FOLDER")
  std::string error;
};

asio::awaitable<mailbox_outcome> fetch_mailbox(const conf::fetch_config& config,
                                               const conf::mailbox& mailbox,
                                               const run_options& options);

}  // namespace postern::fetch
