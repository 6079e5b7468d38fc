#include "fetch_run.hpp"

#include <chrono>
#include <optional>

#include <asio/this_coro.hpp>

#include "cli/log.hpp"
#include "delivery.hpp"
#include "fetch_plan.hpp"
#include "forwarder/smtp/message_header.hpp"
#include "imap_run.hpp"
#include "local_targets.hpp"
#include "message_fetch.hpp"
#include "pop3_client.hpp"
#include "state_store.hpp"
#include "tunnel/net/secret_source.hpp"

namespace postern::fetch {

namespace lg = postern::log;
using asio::awaitable;

namespace {

/// RETR commands in flight with a pipelining server (the one being read included).
constexpr std::size_t retr_window = 4;

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Messages from a POP3 session.
class pop3_source final : public message_source {
 public:
  explicit pop3_source(pop3_client& client, bool tls) : client_(client), tls_(tls) {}
  awaitable<session_result> retrieve(std::uint32_t number, const body_sink& sink,
                                     bool& found) override {
    found = true;
    co_return co_await client_.async_retr(number, sink);
  }
  awaitable<void> stop() override { co_await client_.async_quit(); }
  [[nodiscard]] std::string protocol() const override { return tls_ ? "POP3S" : "POP3"; }

 private:
  pop3_client& client_;
  bool tls_;
};

/// One mailbox's pass: its state, POP3 session and target, and what became of each message.
class mailbox_run {
 public:
  mailbox_run(const conf::fetch_config& config, const conf::mailbox& mailbox,
              const run_options& options, state_store& state, std::string session)
      : config_(config),
        mailbox_(mailbox),
        options_(options),
        state_(state),
        session_(std::move(session)),
        keep_(config.keep.value_or(mailbox.pec)),
        recipient_(mailbox.deliver_to.empty() ? mailbox.address : mailbox.deliver_to) {}

  awaitable<mailbox_outcome> run() {
    target_ = config_.target_for(mailbox_);
    std::string error;
    auto params = session_params_for(config_, mailbox_, *mailbox_.pop3, options_, session_, error);
    if (!params) co_return failed(error, false);
    params_ = std::move(*params);
    executor_ = co_await asio::this_coro::executor;
    target_impl_ = delivery_for(executor_, config_, mailbox_, options_, session_, *target_, error);
    if (!target_impl_) co_return failed(error, false);
    const bool opened = co_await open_session();
    if (!opened) co_return out_;
    uid_listing uids;
    uids.reserve(state_.size());  // a kept mailbox lists about what it has recorded
    pop3_result r = co_await client_->async_uidl(uids);
    if (r.kind == failure_kind::rejected_permanent) {
      // -ERR to UIDL: the server cannot name its messages across sessions.
      if (keep_)
        co_return failed(
            "the server does not support UIDL, so messages left on it cannot be told apart "
            "from new ones; set keep = false to fetch and delete each message in a session of "
            "its own",
            false);
      co_await without_uidl();
      co_return out_;
    }
    // A malformed listing is the server's problem, and it will not pass by itself.
    if (!r.ok()) co_return listing_failed(r);
    co_await with_uidl(uids);
    co_return out_;
  }

 private:
  using step = message_fetch::step;

  mailbox_outcome failed(std::string error, bool temporary) {
    set_failed(out_, std::move(error), temporary);
    return out_;
  }

  /// One message's fetch (message_fetch), with the session and target of the moment.
  awaitable<step> fetch_one(std::uint32_t number, const std::string& uid, std::uint64_t size) {
    pop3_source source(*client_, params_.endpoint.tls != conf::tls_mode::none);
    const message_context context{mailbox_,         options_, session_, recipient_,
                                  params_.endpoint, *target_, now_,     source,
                                  *target_impl_,    state_,   plan_,    out_};
    message_fetch one(context);
    const message_ref m{number, uid, uid.empty() ? "#" + std::to_string(number) : uid, size};
    const step done = co_await one.run(m);
    co_return done;
  }

  mailbox_outcome listing_failed(const pop3_result& r) {
    if (r.kind != failure_kind::protocol) return failed(describe(r), true);
    return failed(describe(r) + ": the server sent a listing that breaks POP3 (RFC 1939); " +
                      "this will not pass by itself: report it to the provider",
                  false);
  }

  awaitable<bool> open_session() {
    client_ = std::make_unique<pop3_client>(executor_, params_);
    pop3_result r = co_await client_->async_open();
    if (!r.ok()) {
      failed(describe(r), r.kind != failure_kind::auth && r.kind != failure_kind::tls &&
                              r.kind != failure_kind::credentials);
      co_return false;
    }
    co_return true;
  }

  /// LIST into `sizes`, with room for `expected` entries.
  awaitable<bool> list(size_listing& sizes, std::size_t expected) {
    sizes = {};
    sizes.reserve(expected);
    pop3_result r = co_await client_->async_list(sizes);
    if (!r.ok()) {
      listing_failed(r);
      co_return false;
    }
    co_return true;
  }

  /// The plan's verdict on one listed message, logged and counted; true when it is to be
  /// fetched now.
  awaitable<bool> carry_out(const listed_decision& d, std::string_view label, std::uint32_t number,
                            std::uint64_t size, const std::optional<uid_record>& recorded) {
    const message_ref m{number, std::string(label), std::string(label), size};
    const listed_action a = report_listed(d, m, recorded, state_, session_, mailbox_, out_);
    if (a == listed_action::delete_old) co_await client_->async_dele(number);
    co_return a == listed_action::fetch;
  }

  /// The normal case: UIDL names every message, the state says which were handled.
  awaitable<void> with_uidl(const uid_listing& uids) {
    size_listing sizes;
    const bool listed = co_await list(sizes, uids.size());
    if (!listed) co_return;
    if (!state_.existed() && keep_ && uids.size() > 0) {
      const bool decided = co_await first_run(uids, sizes);
      if (!decided) co_return;
    }
    // First what to do with each message; then the retrieval, several RETRs in flight when
    // the server allows pipelining.
    std::vector<std::uint32_t> todo;  ///< indexes into `uids`
    for (std::size_t i = 0; i < uids.size(); ++i) {
      const std::uint64_t size = sizes.of(uids.number(i)).value_or(0);
      const std::optional<uid_record> rec = state_.find(uids.uid(i));
      const listed_decision d = plan_.consider(rec, size);
      const bool fetch = co_await carry_out(d, uids.uid(i), uids.number(i), size, rec);
      if (fetch) todo.push_back(static_cast<std::uint32_t>(i));
    }
    std::size_t requested = 0;
    for (std::size_t i = 0; i < todo.size(); ++i) {
      const std::uint32_t number = uids.number(todo[i]);
      // Keep the server a few messages ahead: it reads and encrypts the next ones while this
      // one is delivered. Deliver -> record -> DELE still happens one message at a time.
      while (requested < todo.size() && requested < i + retr_window)
        client_->request_retr(uids.number(todo[requested++]));
      const step done =
          co_await fetch_one(number, std::string(uids.uid(todo[i])), sizes.of(number).value_or(0));
      if (done == step::stop) co_return;
      if (done == step::delete_it) co_await client_->async_dele(number);
    }
    co_await finish();
  }

  /// A kept mailbox with no state whose server holds mail: nothing is delivered until the
  /// admin says what that mail is (--first-run). False when the run must stop here.
  awaitable<bool> first_run(const uid_listing& uids, const size_listing& sizes) {
    using kind = first_run_choice::kind;
    const first_run_choice& choice = options_.first_run;
    if (choice.what == kind::ask) {
      out_.needs_decision = true;
      failed("no state for " + mailbox_.address + " (a first run, a new machine or a lost " +
                 config_.state_dir + "), and the server keeps " + std::to_string(uids.size()) +
                 " messages that may have been delivered already; nothing was fetched. Say once "
                 "what they are: postern-fetch --mailbox " +
                 mailbox_.address +
                 " --first-run all (deliver all of them), --first-run none (deliver none, "
                 "fetch only mail that arrives from now on), or --first-run since:YYYY-MM-DD "
                 "(deliver those dated since then)",
             false);
      co_await client_->async_quit();
      co_return false;
    }
    if (choice.what == kind::all) co_return true;
    std::uint32_t adopted = 0;
    for (std::size_t i = 0; i < uids.size(); ++i) {
      if (choice.what == kind::since) {
        std::string header;
        pop3_result r = co_await client_->async_top(uids.number(i), header);
        if (!r.ok()) {
          failed("--first-run since: TOP " + std::to_string(uids.number(i)) + ": " + describe(r),
                 r.kind != failure_kind::rejected_permanent);
          co_return false;
        }
        // A message with no readable date is delivered: when in doubt, nothing is lost.
        auto date = header_date(header);
        if (!date || *date >= choice.since) continue;
      }
      if (!options_.dry_run)
        state_.note(std::string(uids.uid(i)),
                    {uid_outcome::seen, now_,
                     static_cast<std::int64_t>(sizes.of(uids.number(i)).value_or(0))});
      ++adopted;
    }
    // All of them at once: a run killed half-way leaves no state, and asks again.
    std::string error;
    if (!options_.dry_run && !state_.compact(error)) {
      failed(error, true);
      co_return false;
    }
    lg::info("fetch.first_run", {{"session", session_},
                                 {"mailbox", mailbox_.address},
                                 {"on_server", uids.size()},
                                 {"recorded_as_seen", adopted},
                                 {"to_deliver", uids.size() - adopted}});
    co_return true;
  }

  /// A server without UIDL (only with keep = false): nothing identifies a message across
  /// sessions, so each one is fetched, delivered, deleted and the session ended (QUIT makes
  /// the DELE real) before the next: a crash duplicates at most the message in hand, as with
  /// UIDL. Messages skipped or refused stay at the front of the mailbox, in place.
  awaitable<void> without_uidl() {
    lg::warn("fetch.no_uidl", {{"session", session_},
                               {"mailbox", mailbox_.address},
                               {"effect", "one session per message"}});
    std::uint32_t in_place = 0;
    size_listing sizes;
    for (;;) {
      const bool listed = co_await list(sizes, sizes.size());
      if (!listed) co_return;
      // The first message after those left in place that is to be fetched.
      std::optional<std::uint32_t> pick;
      std::uint64_t pick_size = 0;
      bool capped = false;
      for (std::size_t i = in_place; i < sizes.size() && !pick && !capped; ++i) {
        const std::string label = "#" + std::to_string(sizes.number(i));
        const listed_decision d = plan_.consider(std::nullopt, sizes.size_at(i));
        const bool fetch =
            co_await carry_out(d, label, sizes.number(i), sizes.size_at(i), std::nullopt);
        if (fetch) pick = sizes.number(i), pick_size = sizes.size_at(i);
        if (d.action == listed_action::skip_oversize) ++in_place;
        capped = d.action == listed_action::over_cap;
      }
      if (!pick) break;
      const step done = co_await fetch_one(*pick, "", pick_size);
      if (done == step::stop) co_return;
      if (done == step::refused) {
        ++in_place;
        continue;
      }
      const std::uint32_t deleted_before = client_->deletions();
      co_await client_->async_dele(*pick);
      pop3_result r = co_await client_->async_quit();
      if (!r.ok()) {
        failed("QUIT after DELE: " + describe(r) +
                   "; the deletion may not have happened: the message may be delivered again",
               true);
        co_return;
      }
      if (client_->deletions() == deleted_before)
        ++in_place;  // DELE refused (logged): it stays, and must not be delivered again
      else
        ++out_.deleted;
      const bool opened = co_await open_session();
      if (!opened) co_return;
    }
    co_await client_->async_quit();
  }

  awaitable<void> finish() {
    const std::uint32_t marked_before_quit = client_->pending_deletions();
    pop3_result r = co_await client_->async_quit();  // DELE takes effect only now
    if (r.ok()) {
      out_.deleted = client_->deletions();
    } else if (marked_before_quit > 0 || client_->deletions() > 0) {
      // The server expunges at QUIT (RFC 1939 §6): without its +OK nobody knows whether it
      // did. Nothing is lost (each message was delivered and recorded); the next run
      // deletes again what is still there.
      lg::warn("fetch.quit_failed",
               {{"session", session_},
                {"mailbox", mailbox_.address},
                {"marked", client_->deletions() + marked_before_quit},
                {"error", describe(r)},
                {"effect",
                 "the deletions may not have happened; the next run deletes again "
                 "what is still there"}});
      failed("QUIT failed after DELE: " + describe(r), true);
    }
    std::string error;
    if (!options_.dry_run && !state_.compact(error)) failed(error, true);
  }

  const conf::fetch_config& config_;
  const conf::mailbox& mailbox_;
  const run_options& options_;
  state_store& state_;
  const std::string session_;
  const bool keep_;
  const std::string recipient_;
  const std::int64_t now_ = now_seconds();
  fetch_plan plan_{
      plan_settings::of(config_, keep_, now_, options_.dry_run, options_.retry_failed)};
  std::optional<conf::delivery_target> target_;
  pop3_params params_;
  asio::any_io_executor executor_;
  std::unique_ptr<delivery> target_impl_;
  std::unique_ptr<pop3_client> client_;
  mailbox_outcome out_;
};

}  // namespace

awaitable<mailbox_outcome> fetch_mailbox(const conf::fetch_config& config,
                                         const conf::mailbox& mailbox, const run_options& options) {
  const std::string session = lg::new_session_id();
  if (mailbox.protocol == conf::fetch_protocol::imap)
    co_return co_await fetch_imap_mailbox(config, mailbox, options, session);
  auto opened = state_store::open(config.state_dir, mailbox.address);
  if (opened.status == state_store::open_status::busy) {
    lg::info("fetch.skipped",
             {{"session", session}, {"mailbox", mailbox.address}, {"reason", opened.error}});
    mailbox_outcome out;
    out.result = mailbox_outcome::status::busy;
    co_return out;
  }
  if (!opened.store) {
    mailbox_outcome out;
    out.result = mailbox_outcome::status::failed;
    out.error = opened.error;
    co_return out;
  }
  mailbox_run run(config, mailbox, options, *opened.store, session);
  co_return co_await run.run();
}

}  // namespace postern::fetch
