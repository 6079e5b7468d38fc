#include "daemon.hpp"

#include <cctype>
#include <csignal>
#include <cstdlib>
#include <list>
#include <map>
#include <optional>
#include <random>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "cli/config_report.hpp"
#include "cli/log.hpp"
#include "cli/service_manager.hpp"
#include "cli/supervise.hpp"
#include "conf/insecure.hpp"
#include "fetch/imap_watch.hpp"
#include "fetch/run_all.hpp"

namespace postern::fetch {

namespace lg = postern::log;

class fetch_daemon::impl {
 public:
  impl(asio::io_context& ctx, std::string file, conf::fetch_config config, std::string only,
       const run_options& options, conf::duration grace)
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
    bool wake_pending = false;  ///< new mail was signalled (IDLE): a pass as soon as may be
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
      start_watches(*m);
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

  /// A pass of `key` now, or right after the one in progress.
  void wake(const std::string& key) {
    auto it = loops_.find(key);
    if (it == loops_.end()) return;
    it->second->wake_pending = true;
    it->second->timer.cancel();
  }

  /// IDLE on the folders the mailbox's connections allow; each signals its mailbox's loop.
  void start_watches(const conf::mailbox& m) {
    if (stopping_) return;
    for (const std::string& folder : watched_folders(m)) {
      const std::string key = lower(m.address);
      auto it = watches_.insert(watches_.end(), nullptr);
      *it = std::make_unique<folder_watch>(ctx_, config_, m.address, folder, options_,
                                           [this, key] { wake(key); });
      asio::co_spawn(ctx_, watch(it),
                     cli::supervised{"fetch.crashed", "",
                                     [this, it](const std::string&) { forget_watch(it); }});
    }
  }

  using watch_list = std::list<std::unique_ptr<folder_watch>>;
  asio::awaitable<void> watch(watch_list::iterator it) {
    co_await (*it)->run();
    forget_watch(it);
  }

  void forget_watch(watch_list::iterator it) {
    watches_.erase(it);
    maybe_done();
  }

  void stop_watches() {
    for (auto& w : watches_) w->stop();
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
      l.wake_pending = false;  // this pass takes what was signalled
      mailbox_outcome o = co_await fetch_mailbox(*config, *m, options_);
      free_slot();
      int ignored = 0;
      report(*m, o, ignored);
      if (stopping_) break;
      if (l.wake_pending) continue;  // signalled during the pass
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
    if (!stopping_ || !loops_.empty() || !watches_.empty()) return;
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
      stop_watches();
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
      // The watches start over with the new settings (folders, endpoints, credentials).
      stop_watches();
      for (auto& [key, l] : loops_)
        if (const conf::mailbox* m = config_->registry.find(key); m && m->fetch) start_watches(*m);
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
  const run_options& options_;
  conf::duration grace_;
  asio::signal_set signals_;
  asio::steady_timer grace_timer_;
  std::map<std::string, std::unique_ptr<loop>> loops_;  ///< by lower-case address
  watch_list watches_;                                  ///< IDLE on --daemon's IMAP folders
  std::size_t running_ = 0, slots_ = 1;
  bool stopping_ = false;
  std::mt19937 rng_{std::random_device{}()};
};

fetch_daemon::fetch_daemon(asio::io_context& ctx, std::string file, conf::fetch_config config,
                           std::string only, const run_options& options, conf::duration grace)
    : impl_(std::make_unique<impl>(ctx, std::move(file), std::move(config), std::move(only),
                                   options, grace)) {}

fetch_daemon::~fetch_daemon() = default;

bool fetch_daemon::start() { return impl_->start(); }

}  // namespace postern::fetch
