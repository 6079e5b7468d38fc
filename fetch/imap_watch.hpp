#pragma once
/// --daemon's IDLE (RFC 2177) on an IMAP folder: a connection of its own, logged in, the
/// folder examined, IDLE renewed every [timeouts] idle (under RFC 2177's 29 minutes), and a
/// call to `notify` whenever the folder grows (and once after each connect, for what arrived
/// while it was away). When the server drops the connection (some do after minutes) it
/// reconnects with back-off; a server without IDLE ends the watch (the mailbox is then
/// polled every `interval`). It only signals: the fetching is the mailbox's pass.

#include <functional>
#include <memory>
#include <string>

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>

#include "conf/fetch_config.hpp"
#include "fetch/fetch_run.hpp"

namespace postern::fetch {

class folder_watch {
 public:
  folder_watch(asio::io_context& ctx, std::shared_ptr<const conf::fetch_config> config,
               std::string address, std::string folder, const run_options& options,
               std::function<void()> notify);
  ~folder_watch();
  /// Watches until stop(); returns once the connection is closed.
  asio::awaitable<void> run();
  /// Ends the watch now: its connection is cut, its back-off cancelled.
  void stop();
  [[nodiscard]] const std::string& folder() const;

 private:
  class impl;
  std::unique_ptr<impl> impl_;
};

/// The folders of `m` that --daemon watches with IDLE: as many as its connections allow while
/// one stays free for the passes (max_connections - 1), in order.
std::vector<std::string> watched_folders(const conf::mailbox& m);

}  // namespace postern::fetch
