#include "imap_watch.hpp"

#include <algorithm>

#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "cli/log.hpp"
#include "fetch/imap_client.hpp"
#include "fetch/message_fetch.hpp"

namespace postern::fetch {

namespace lg = postern::log;
using asio::awaitable;
using namespace std::chrono_literals;

namespace {
constexpr conf::duration first_retry = 5s;
constexpr conf::duration longest_retry = 5min;
}  // namespace

class folder_watch::impl {
 public:
  impl(asio::io_context& ctx, std::shared_ptr<const conf::fetch_config> config, std::string address,
       std::string folder, const run_options& options, std::function<void()> notify)
      : ctx_(ctx),
        config_(std::move(config)),
        address_(std::move(address)),
        folder_(std::move(folder)),
        options_(options),
        notify_(std::move(notify)),
        backoff_(ctx) {}

  awaitable<void> run() {
    conf::duration delay = first_retry;
    while (!stopping_) {
      const auto started = std::chrono::steady_clock::now();
      const bool keep_watching = co_await session();
      client_.reset();
      if (stopping_ || !keep_watching) break;
      // A connection that held for a whole IDLE period was a good one: start over at 5s.
      if (std::chrono::steady_clock::now() - started >= config_->timeouts.idle) delay = first_retry;
      lg::info("fetch.watch_retry",
               {{"mailbox", address_}, {"folder", folder_}, {"in", conf::format_duration(delay)}});
      backoff_.expires_after(delay);
      co_await backoff_.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
      delay = std::min<conf::duration>(delay * 2, longest_retry);
    }
  }

  void stop() {
    stopping_ = true;
    if (client_) client_->cut();
    backoff_.cancel();
  }

  const std::string& folder() const { return folder_; }

 private:
  /// One connection's watch; false when watching cannot work at all (no IDLE, bad settings).
  awaitable<bool> session() {
    const conf::mailbox* m = config_->registry.find(address_);
    if (!m || !m->imap) co_return false;
    const std::string session = lg::new_session_id();
    std::string error;
    auto params = session_params_for(*config_, *m, *m->imap, options_, session, error);
    if (!params) {
      lg::error("fetch.watch_failed",
                {{"mailbox", address_}, {"folder", folder_}, {"error", error}});
      co_return false;
    }
    client_ = std::make_unique<imap_client>(ctx_.get_executor(), std::move(*params));
    imap_result r = co_await client_->async_open();
    if (r.ok() && !client_->capabilities().idle) {
      lg::warn("fetch.imap_no_idle",
               {{"session", session},
                {"mailbox", address_},
                {"effect", "the server has no IDLE: the mailbox is fetched every interval"}});
      co_await client_->async_logout();
      co_return false;
    }
    if (r.ok()) r = co_await client_->async_select(folder_, true);
    if (!r.ok()) {
      if (!stopping_)
        lg::warn("fetch.watch_failed", {{"session", session},
                                        {"mailbox", address_},
                                        {"folder", folder_},
                                        {"error", describe(r)}});
      co_return true;
    }
    lg::info("fetch.watching", {{"session", session}, {"mailbox", address_}, {"folder", folder_}});
    notify_();  // what arrived while nobody watched
    for (;;) {
      bool new_mail = false;
      r = co_await client_->async_idle(config_->timeouts.idle, new_mail);
      if (stopping_) co_return true;
      if (!r.ok()) {
        lg::warn("fetch.watch_dropped", {{"session", session},
                                         {"mailbox", address_},
                                         {"folder", folder_},
                                         {"error", describe(r)}});
        co_return true;
      }
      if (new_mail) {
        lg::info("fetch.new_mail",
                 {{"session", session}, {"mailbox", address_}, {"folder", folder_}});
        notify_();
      }
    }
  }

  asio::io_context& ctx_;
  std::shared_ptr<const conf::fetch_config> config_;
  std::string address_, folder_;
  const run_options& options_;
  std::function<void()> notify_;
  asio::steady_timer backoff_;
  std::unique_ptr<imap_client> client_;
  bool stopping_ = false;
};

folder_watch::folder_watch(asio::io_context& ctx, std::shared_ptr<const conf::fetch_config> config,
                           std::string address, std::string folder, const run_options& options,
                           std::function<void()> notify)
    : impl_(std::make_unique<impl>(ctx, std::move(config), std::move(address), std::move(folder),
                                   options, std::move(notify))) {}

folder_watch::~folder_watch() = default;

awaitable<void> folder_watch::run() { co_await impl_->run(); }

void folder_watch::stop() { impl_->stop(); }

const std::string& folder_watch::folder() const { return impl_->folder(); }

std::vector<std::string> watched_folders(const conf::mailbox& m) {
  if (m.protocol != conf::fetch_protocol::imap || !m.imap || m.max_connections < 2) return {};
  const std::size_t n = std::min<std::size_t>(m.folders.size(), m.max_connections - 1);
  return {m.folders.begin(), m.folders.begin() + static_cast<std::ptrdiff_t>(n)};
}

}  // namespace postern::fetch
