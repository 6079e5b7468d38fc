#include "imap_run.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <unordered_map>

#include <asio/this_coro.hpp>

#include "cli/log.hpp"
#include "fetch/first_run.hpp"
#include "fetch/imap_client.hpp"
#include "fetch/message_fetch.hpp"
#include "forwarder/smtp/message_header.hpp"
#include "tunnel/net/digest.hpp"

namespace postern::fetch {

namespace lg = postern::log;
using asio::awaitable;

namespace {

/// Bodies asked for ahead of the one being delivered.
constexpr std::size_t body_window = 4;
/// Messages whose header sections one command asks for (first run, re-identification), and
/// UIDs in one expunge of expired mail.
constexpr std::size_t batch = 200;

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

template <class T>
T number_or(std::string_view text, T fallback) {
  T v{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  return ec == std::errc() && end == text.data() + text.size() ? v : fallback;
}

/// The state's key of a message: "UIDVALIDITY/UID".
std::string key_of(std::uint32_t validity, std::uint32_t uid) {
  return std::to_string(validity) + "/" + std::to_string(uid);
}

struct parsed_key {
  std::uint32_t validity = 0, uid = 0;
};
std::optional<parsed_key> parse_key(std::string_view key) {
  const auto slash = key.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  parsed_key k{number_or<std::uint32_t>(key.substr(0, slash), 0),
               number_or<std::uint32_t>(key.substr(slash + 1), 0)};
  if (k.validity == 0 || k.uid == 0) return std::nullopt;
  return k;
}

/// The identity digest of a header section, as message_fetch computes it at delivery.
std::string header_digest(std::string_view header) {
  const auto end = smtp::header_end(header);
  net::sha256 d;
  d.update(header.substr(0, end ? *end : header.size()));
  return d.hex_final();
}

/// Messages from an IMAP session: a UID's BODY.PEEK[].
class imap_source final : public message_source {
 public:
  imap_source(imap_client& client, bool tls) : client_(client), tls_(tls) {}
  awaitable<session_result> retrieve(std::uint32_t uid, const body_sink& sink,
                                     bool& found) override {
    co_return co_await client_.async_body(uid, sink, found);
  }
  awaitable<void> stop() override { co_await client_.async_logout(); }
  [[nodiscard]] std::string protocol() const override { return tls_ ? "IMAPS" : "IMAP"; }

 private:
  imap_client& client_;
  bool tls_;
};

/// One folder's pass: its state, what SELECT said, and what this run asked of the server.
struct folder_pass {
  std::string folder;
  std::unique_ptr<state_store> state;
  std::uint32_t validity = 0;
  std::uint32_t from = 1;                ///< the listing starts here
  std::vector<imap_listed> listed;       ///< ascending UIDs
  std::vector<std::uint32_t> gone;       ///< listed, but gone before they were retrieved
  std::vector<std::uint32_t> withdrawn;  ///< removed or moved by this run
  std::vector<std::uint32_t> expunge;    ///< marked \Deleted, expunged at the folder's end
  bool reidentified = false;             ///< a UIDVALIDITY change was handled in this run
  std::uint32_t refused_before = 0;      ///< the session's refused changes when it began
  std::uint32_t expunged_before = 0;     ///< the session's confirmed expunges when it began
  [[nodiscard]] std::string key(std::uint32_t uid) const { return key_of(validity, uid); }
  [[nodiscard]] std::string label(std::uint32_t uid) const {
    return folder + ";UIDVALIDITY=" + std::to_string(validity) + ";UID=" + std::to_string(uid);
  }
};

class imap_mailbox_run {
 public:
  imap_mailbox_run(const conf::fetch_config& config, const conf::mailbox& mailbox,
                   const run_options& options, std::string session)
      : config_(config),
        mailbox_(mailbox),
        options_(options),
        session_(std::move(session)),
        after_(effective_after(config, mailbox)),
        keep_(after_.what != conf::imap_after::kind::remove),
        recipient_(mailbox.deliver_to.empty() ? mailbox.address : mailbox.deliver_to) {}

  static conf::imap_after effective_after(const conf::fetch_config& config,
                                          const conf::mailbox& m) {
    if (m.after) return *m.after;
    conf::imap_after a;
    if (!config.keep.value_or(m.pec)) a.what = conf::imap_after::kind::remove;
    return a;
  }

  awaitable<mailbox_outcome> run() {
    std::string error;
    target_ = config_.target_for(mailbox_);
    auto params = session_params_for(config_, mailbox_, *mailbox_.imap, options_, session_, error);
    if (!params) co_return failed(error, false);
    const auto executor = co_await asio::this_coro::executor;
    target_impl_ = delivery_for(executor, config_, mailbox_, options_, session_, *target_, error);
    if (!target_impl_) co_return failed(error, false);
    client_ = std::make_unique<imap_client>(executor, std::move(*params));
    imap_result r = co_await client_->async_open();
    if (!r.ok()) {
      const bool temporary = r.kind != failure_kind::auth && r.kind != failure_kind::tls &&
                             r.kind != failure_kind::credentials;
      co_return failed(describe(r), temporary);
    }
    say_what_the_server_lacks();
    for (const std::string& folder : mailbox_.folders) {
      const bool go_on = co_await fetch_folder(folder);
      if (!go_on) break;
    }
    if (client_->usable()) co_await client_->async_logout();
    co_return out_;
  }

 private:
  using step = message_fetch::step;

  mailbox_outcome failed(std::string error, bool temporary) {
    // The first failure says why; later folders add nothing to it.
    if (out_.result != mailbox_outcome::status::failed)
      set_failed(out_, std::move(error), temporary);
    return out_;
  }

  /// `after` asks for what the server cannot do safely: said once, and done the safe way.
  void say_what_the_server_lacks() {
    const auto& caps = client_->capabilities();
    using kind = conf::imap_after::kind;
    if (after_.what == kind::remove && !caps.uidplus)
      lg::warn("fetch.imap_no_uidplus",
               {{"session", session_},
                {"mailbox", mailbox_.address},
                {"effect",
                 "the server has no UIDPLUS, so deleting would need a bare EXPUNGE, which also "
                 "removes what other clients marked \\Deleted: delivered mail is kept and "
                 "marked \\Seen instead"}});
    if (after_.what == kind::move && !caps.move)
      lg::warn("fetch.imap_no_move",
               {{"session", session_},
                {"mailbox", mailbox_.address},
                {"effect", caps.uidplus ? "moved as UID COPY, \\Deleted and UID EXPUNGE"
                                        : "copied to " + after_.folder +
                                              "; the originals are marked \\Deleted and left "
                                              "for the server or its users to expunge (no "
                                              "UIDPLUS, so no UID EXPUNGE)"}});
  }

  awaitable<bool> fetch_folder(const std::string& folder) {
    auto opened = state_store::open(config_.state_dir, mailbox_.address, imap_scope(folder));
    if (opened.status == state_store::open_status::busy) {
      lg::info("fetch.skipped", {{"session", session_},
                                 {"mailbox", mailbox_.address},
                                 {"folder", folder},
                                 {"reason", opened.error}});
      if (out_.result == mailbox_outcome::status::ok) out_.result = mailbox_outcome::status::busy;
      co_return true;
    }
    if (!opened.store) {
      failed(opened.error, false);
      co_return true;
    }
    folder_pass pass;
    pass.folder = folder;
    pass.state = std::move(opened.store);
    pass.refused_before = client_->refusals();
    pass.expunged_before = client_->expunged();
    const bool selected = co_await select(pass);
    if (!selected) co_return client_->usable();
    const bool listed = co_await list(pass);
    if (!listed) co_return client_->usable();
    const bool done = co_await process(pass);
    if (!client_->usable()) co_return false;
    co_await finish_folder(pass, done);
    co_return client_->usable();
  }

  /// SELECT (EXAMINE when nothing will be changed), with what QRESYNC needs; the listing's
  /// start from the state; a UIDVALIDITY change handled.
  awaitable<bool> select(folder_pass& pass) {
    const auto known = number_or<std::uint32_t>(pass.state->meta("uidvalidity"), 0);
    const auto modseq = number_or<std::uint64_t>(pass.state->meta("modseq"), 0);
    const bool read_only = after_.what == conf::imap_after::kind::keep && !config_.delete_after;
    imap_result r = co_await client_->async_select(pass.folder, read_only, known, modseq);
    if (!r.ok()) {
      failed("folder " + pass.folder + ": " + describe(r),
             r.kind != failure_kind::rejected_permanent);
      co_return false;
    }
    const imap_folder& f = client_->folder();
    pass.validity = f.uidvalidity;
    if (known == f.uidvalidity)
      for (std::uint32_t uid : f.vanished) pass.state->note_forgotten(pass.key(uid));
    pass.from =
        known == f.uidvalidity && !options_.retry_failed
            ? std::max<std::uint32_t>(number_or<std::uint32_t>(pass.state->meta("next"), 1), 1)
            : 1;
    pass.reidentified = known != 0 && known != f.uidvalidity;
    co_return true;
  }

  awaitable<bool> list(folder_pass& pass) {
    const imap_folder& f = client_->folder();
    // UIDNEXT says nothing arrived since the last run: no listing at all.
    if (!pass.reidentified && f.uidnext != 0 && f.uidnext <= pass.from && pass.state->existed())
      co_return true;
    imap_result r = co_await client_->async_list(pass.from, pass.listed);
    if (!r.ok()) {
      failed("folder " + pass.folder + ": listing: " + describe(r), true);
      co_return false;
    }
    std::sort(pass.listed.begin(), pass.listed.end(),
              [](const imap_listed& a, const imap_listed& b) { return a.uid < b.uid; });
    if (pass.reidentified) {
      const bool ok = co_await reidentify(pass);
      if (!ok) co_return false;
    } else if (!pass.state->existed() && keep_ && !pass.listed.empty()) {
      const bool decided = co_await first_run(pass);
      if (!decided) co_return false;
    }
    co_return true;
  }

  /// The headers of `uids`, in batches; false (the run's failure set) when a batch fails.
  awaitable<bool> headers_of(const folder_pass& pass, const std::vector<std::uint32_t>& uids,
                             std::vector<imap_header>& out) {
    for (std::size_t i = 0; i < uids.size(); i += batch) {
      const std::vector<std::uint32_t> part(
          uids.begin() + static_cast<std::ptrdiff_t>(i),
          uids.begin() + static_cast<std::ptrdiff_t>(std::min(uids.size(), i + batch)));
      std::vector<imap_header> got;
      imap_result r = co_await client_->async_headers(imap_uid_set(part), got);
      if (!r.ok()) {
        failed("folder " + pass.folder + ": header sections: " + describe(r), true);
        co_return false;
      }
      for (auto& h : got) out.push_back(std::move(h));
    }
    co_return true;
  }

  /// A UIDVALIDITY change: every listed message not yet recorded under the new validity whose
  /// size an old record has is compared by header digest; a match takes the old record's
  /// outcome under its new UID. The old records are dropped with the same atomic rewrite,
  /// so a crash leaves either all of the old state or all of the new.
  awaitable<bool> reidentify(folder_pass& pass) {
    const std::string old = pass.state->meta("uidvalidity");
    lg::warn("fetch.uidvalidity_changed",
             {{"session", session_},
              {"mailbox", mailbox_.address},
              {"folder", pass.folder},
              {"old", old},
              {"new", pass.validity},
              {"effect",
               "messages already delivered are recognised by size and header digest; only new "
               "ones are delivered, and none is deleted in this run"}});
    std::unordered_multimap<std::int64_t, uid_record> identities;
    std::vector<std::string> stale;
    pass.state->for_each([&](std::string_view key, const uid_record& rec) {
      auto k = parse_key(key);
      if (k && k->validity == pass.validity) return;
      stale.emplace_back(key);
      if (!rec.digest.empty() && rec.size >= 0) identities.emplace(rec.size, rec);
    });
    std::vector<std::uint32_t> ask;
    for (const auto& l : pass.listed)
      if (!pass.state->find(pass.key(l.uid)) &&
          identities.count(static_cast<std::int64_t>(l.size)) > 0)
        ask.push_back(l.uid);
    std::vector<imap_header> headers;
    const bool ok = co_await headers_of(pass, ask, headers);
    if (!ok) co_return false;
    std::size_t recognised = 0;
    for (const auto& h : headers) {
      const std::string digest = header_digest(h.header);
      auto [lo, hi] = identities.equal_range(static_cast<std::int64_t>(h.size));
      auto match = std::find_if(lo, hi, [&](const auto& e) { return e.second.digest == digest; });
      if (match == hi) continue;
      pass.state->note(pass.key(h.uid), match->second);
      identities.erase(match);
      ++recognised;
    }
    for (const auto& key : stale) pass.state->note_forgotten(key);
    pass.state->set_meta("uidvalidity", std::to_string(pass.validity));
    pass.state->set_meta("next", "1");
    std::string error;
    if (!options_.dry_run && !pass.state->compact(error)) {
      failed(error, true);
      co_return false;
    }
    lg::info("fetch.reidentified", {{"session", session_},
                                    {"mailbox", mailbox_.address},
                                    {"folder", pass.folder},
                                    {"on_server", pass.listed.size()},
                                    {"recognised", recognised},
                                    {"old_records_dropped", stale.size() - recognised}});
    co_return true;
  }

  /// A kept folder with no state whose server holds mail: nothing is delivered until the
  /// admin says what that mail is (--first-run), as for POP3.
  awaitable<bool> first_run(folder_pass& pass) {
    using kind = first_run_choice::kind;
    const first_run_choice& choice = options_.first_run;
    if (choice.what == kind::ask) {
      out_.needs_decision = true;
      failed("no state for " + mailbox_.address + " folder " + pass.folder + " (a first run, a " +
                 "new machine or a lost " + config_.state_dir + "), and the server keeps " +
                 std::to_string(pass.listed.size()) +
                 " messages there that may have been delivered already; nothing was fetched. "
                 "Say once what they are: postern-fetch --mailbox " +
                 mailbox_.address +
                 " --first-run all (deliver all of them), --first-run none (deliver none, "
                 "fetch only mail that arrives from now on), or --first-run since:YYYY-MM-DD "
                 "(deliver those dated since then)",
             false);
      co_return false;
    }
    if (choice.what == kind::all) co_return true;
    std::vector<std::uint32_t> uids;
    for (const auto& l : pass.listed) uids.push_back(l.uid);
    std::vector<imap_header> headers;
    const bool ok = co_await headers_of(pass, uids, headers);
    if (!ok) co_return false;
    std::uint32_t adopted = 0;
    for (const auto& h : headers) {
      // A message with no readable date is delivered: when in doubt, nothing is lost.
      const auto date = header_date(h.header);
      if (choice.what == kind::since && (!date || *date >= choice.since)) continue;
      if (!options_.dry_run)
        pass.state->note(
            pass.key(h.uid),
            {uid_outcome::seen, now_, static_cast<std::int64_t>(h.size), header_digest(h.header)});
      ++adopted;
    }
    pass.state->set_meta("uidvalidity", std::to_string(pass.validity));
    std::string error;
    if (!options_.dry_run && !pass.state->compact(error)) {
      failed(error, true);
      co_return false;
    }
    lg::info("fetch.first_run", {{"session", session_},
                                 {"mailbox", mailbox_.address},
                                 {"folder", pass.folder},
                                 {"on_server", pass.listed.size()},
                                 {"recorded_as_seen", adopted},
                                 {"to_deliver", pass.listed.size() - adopted}});
    co_return true;
  }

  /// Each listed message as the plan says; the new ones retrieved with a few bodies asked for
  /// ahead, delivered, recorded, then acted on. False when the run stopped inside the folder.
  awaitable<bool> process(folder_pass& pass) {
    std::vector<std::size_t> todo;
    for (std::size_t i = 0; i < pass.listed.size(); ++i) {
      const imap_listed& l = pass.listed[i];
      const std::optional<uid_record> rec = pass.state->find(pass.key(l.uid));
      const listed_decision d = plan_.consider(rec, l.size);
      const message_ref m{l.uid, pass.key(l.uid), pass.label(l.uid), l.size};
      const listed_action a = report_listed(d, m, rec, *pass.state, session_, mailbox_, out_);
      if (a == listed_action::fetch) todo.push_back(i);
      // Never on the strength of a UID renamed by a UIDVALIDITY change in this very run.
      if (a == listed_action::delete_old && !pass.reidentified) withdraw(pass, {l.uid});
    }
    std::size_t requested = 0;
    for (std::size_t k = 0; k < todo.size(); ++k) {
      while (requested < todo.size() && requested < k + body_window)
        client_->request_body(pass.listed[todo[requested++]].uid);
      const imap_listed& l = pass.listed[todo[k]];
      const step done = co_await fetch_one(pass, l);
      if (done == step::stop) co_return false;
      if (done == step::gone) pass.gone.push_back(l.uid);
      if (done == step::delete_it) withdraw(pass, {l.uid});
      if (done == step::keep_it) after_kept(pass, l.uid);
    }
    co_return true;
  }

  awaitable<step> fetch_one(const folder_pass& pass, const imap_listed& l) {
    imap_source source(*client_, mailbox_.imap->tls != conf::tls_mode::none);
    const message_context context{
        mailbox_, options_,      session_,    recipient_, *mailbox_.imap, *target_,         now_,
        source,   *target_impl_, *pass.state, plan_,      out_,           /*identity=*/true};
    message_fetch one(context);
    const message_ref m{l.uid, pass.key(l.uid), pass.label(l.uid), l.size};
    const step done = co_await one.run(m);
    co_return done;
  }

  /// Deletes delivered messages: \Deleted now, and UID EXPUNGE of exactly them (UIDPLUS) at
  /// the folder's end, once the server has answered every STORE (an EXPUNGE pipelined behind
  /// its STORE may run before it: RFC 3501 §5.5, and Dovecot does now and then). Without
  /// UIDPLUS they are only marked \Seen (said once, at the start).
  void withdraw(folder_pass& pass, const std::vector<std::uint32_t>& uids) {
    if (uids.empty() || options_.dry_run) return;
    const std::string set = imap_uid_set(uids);
    if (!client_->capabilities().uidplus) {
      client_->store(set, "\\Seen");
      return;
    }
    client_->store(set, "\\Deleted");
    pass.expunge.insert(pass.expunge.end(), uids.begin(), uids.end());
    pass.withdrawn.insert(pass.withdrawn.end(), uids.begin(), uids.end());
  }

  /// UID EXPUNGE of what this pass marked \Deleted, after the STOREs were answered.
  awaitable<bool> expunge_marked(folder_pass& pass) {
    if (pass.expunge.empty()) co_return true;
    std::sort(pass.expunge.begin(), pass.expunge.end());
    for (std::size_t i = 0; i < pass.expunge.size(); i += 1000)
      client_->expunge(imap_uid_set(std::vector<std::uint32_t>(
          pass.expunge.begin() + static_cast<std::ptrdiff_t>(i),
          pass.expunge.begin() +
              static_cast<std::ptrdiff_t>(std::min(pass.expunge.size(), i + 1000)))));
    pass.expunge.clear();
    imap_result r = co_await client_->async_sync();
    if (!r.ok()) failed("folder " + pass.folder + ": " + describe(r), true);
    co_return r.ok();
  }

  /// What `after` asks for a message delivered and kept on the server.
  void after_kept(folder_pass& pass, std::uint32_t uid) {
    using kind = conf::imap_after::kind;
    const std::string set = std::to_string(uid);
    const auto& caps = client_->capabilities();
    switch (after_.what) {
      case kind::keep:
      case kind::remove: return;
      case kind::seen: client_->store(set, "\\Seen"); return;
      case kind::move:
        if (caps.move) {
          client_->move(set, after_.folder);
        } else {
          client_->copy(set, after_.folder);
          client_->store(set, "\\Deleted");
          if (caps.uidplus) pass.expunge.push_back(uid);
        }
        pass.withdrawn.push_back(uid);
        ++out_.moved;
        return;
    }
  }

  /// Records not listed in this run: those refused for good are counted as held, delivered
  /// ones kept long enough (delete_after) are deleted, and so are those that after = "delete"
  /// should have removed already (a run killed between the record and the expunge).
  void scan_unlisted(folder_pass& pass) {
    std::vector<std::uint32_t> expired;
    const bool leftovers =
        !keep_ && client_->capabilities().uidplus && !pass.reidentified && !options_.dry_run;
    const bool may_expire = keep_ && after_.what != conf::imap_after::kind::move &&
                            config_.delete_after && !pass.reidentified && !options_.dry_run;
    const std::int64_t age =
        may_expire ? std::chrono::duration_cast<std::chrono::seconds>(*config_.delete_after).count()
                   : 0;
    pass.state->for_each([&](std::string_view key, const uid_record& rec) {
      auto k = parse_key(key);
      if (!k || k->validity != pass.validity || k->uid >= pass.from) return;
      if (rec.outcome == uid_outcome::failed) ++out_.held;
      if (rec.outcome == uid_outcome::delivered &&
          (leftovers || (may_expire && now_ - rec.time >= age)))
        expired.push_back(k->uid);
    });
    std::sort(expired.begin(), expired.end());
    for (std::size_t i = 0; i < expired.size(); i += batch)
      withdraw(pass, std::vector<std::uint32_t>(
                         expired.begin() + static_cast<std::ptrdiff_t>(i),
                         expired.begin() +
                             static_cast<std::ptrdiff_t>(std::min(expired.size(), i + batch))));
  }

  /// The answers to everything pipelined, then the state: withdrawn messages forgotten when
  /// the server confirmed every change, the listing's new start, UIDVALIDITY and MODSEQ.
  awaitable<void> finish_folder(folder_pass& pass, bool complete) {
    scan_unlisted(pass);
    imap_result r = co_await client_->async_sync();
    if (!r.ok()) {
      failed("folder " + pass.folder + ": " + describe(r), true);
      co_return;
    }
    const bool expunged = co_await expunge_marked(pass);
    if (!expunged) co_return;
    out_.deleted += client_->expunged() - pass.expunged_before;
    if (options_.dry_run) co_return;
    if (client_->refusals() == pass.refused_before)
      for (std::uint32_t uid : pass.withdrawn) pass.state->note_forgotten(pass.key(uid));
    pass.state->set_meta("uidvalidity", std::to_string(pass.validity));
    pass.state->set_meta("next", std::to_string(next_start(pass, complete)));
    if (const auto& m = client_->folder().highest_modseq; m && client_->qresync())
      pass.state->set_meta("modseq", std::to_string(*m));
    std::string error;
    if (!pass.state->compact(error)) failed(error, true);
  }

  /// Where the next listing starts: at the first listed message left undecided (skipped,
  /// over the run's cap, deferred), else past everything listed and what UIDNEXT announced.
  std::uint32_t next_start(const folder_pass& pass, bool complete) const {
    for (const auto& l : pass.listed) {
      const bool gone = std::find(pass.gone.begin(), pass.gone.end(), l.uid) != pass.gone.end();
      if (!gone && !pass.state->find(pass.key(l.uid))) return l.uid;
    }
    std::uint32_t next = pass.from;
    if (!pass.listed.empty()) next = std::max(next, pass.listed.back().uid + 1);
    if (complete) next = std::max(next, client_->folder().uidnext);
    return next;
  }

  const conf::fetch_config& config_;
  const conf::mailbox& mailbox_;
  const run_options& options_;
  const std::string session_;
  const conf::imap_after after_;
  const bool keep_;
  const std::string recipient_;
  const std::int64_t now_ = now_seconds();
  fetch_plan plan_{
      plan_settings::of(config_, keep_, now_, options_.dry_run, options_.retry_failed)};
  std::optional<conf::delivery_target> target_;
  std::unique_ptr<delivery> target_impl_;
  std::unique_ptr<imap_client> client_;
  mailbox_outcome out_;
};

}  // namespace

std::string imap_scope(const std::string& folder) { return "imap " + folder; }

awaitable<mailbox_outcome> fetch_imap_mailbox(const conf::fetch_config& config,
                                              const conf::mailbox& mailbox,
                                              const run_options& options,
                                              const std::string& session) {
  imap_mailbox_run run(config, mailbox, options, session);
  co_return co_await run.run();
}

}  // namespace postern::fetch
