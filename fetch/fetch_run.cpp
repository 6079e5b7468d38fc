#include "fetch_run.hpp"

#include <unistd.h>

#include <chrono>
#include <map>
#include <optional>

#include <asio/this_coro.hpp>

#include "cli/log.hpp"
#include "local_targets.hpp"
#include "pec_receipt.hpp"
#include "pop3_client.hpp"
#include "state_store.hpp"

namespace postern::fetch {

namespace lg = postern::log;
using asio::awaitable;

namespace {

/// Bytes of each message kept for classification: receipts are small; an envelope's
/// daticert.xml comes before the (possibly large) original in practice.
constexpr std::size_t classify_prefix = 2 * 1024 * 1024;

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Writes all of `data` to a descriptor (the stdout target).
bool write_fd(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

/// One message on its way into a local target.
class local_delivery {
 public:
  local_delivery(const conf::delivery_target& target, int stdout_fd)
      : target_(target), stdout_fd_(stdout_fd) {}
  bool begin(const std::string& sender, std::string& error) {
    if (target_.kind == conf::target_kind::maildir) return maildir_.begin(target_.path, error);
    out_ = mboxrd_encoder::separator(sender, now_seconds());
    return true;
  }
  bool write(const std::string& bytes, std::string& error) {
    if (target_.kind == conf::target_kind::maildir) return maildir_.write(bytes, error);
    mbox_.encode(bytes, out_);
    if (out_.size() < 64 * 1024) return true;
    return flush(error);
  }
  bool commit(std::string& error) {
    if (target_.kind == conf::target_kind::maildir) return maildir_.commit(error);
    mbox_.finish(out_);
    return flush(error);
  }

 private:
  bool flush(std::string& error) {
    if (!write_fd(stdout_fd_, out_)) {
      error = "writing to standard output failed";
      return false;
    }
    out_.clear();
    return true;
  }
  const conf::delivery_target& target_;
  int stdout_fd_;
  maildir_writer maildir_;
  mboxrd_encoder mbox_;
  std::string out_;
};

mailbox_outcome fail(mailbox_outcome out, std::string error, bool temporary) {
  out.result = mailbox_outcome::status::failed;
  out.error = std::move(error);
  out.temporary = temporary;
  return out;
}

}  // namespace

awaitable<mailbox_outcome> fetch_mailbox(const conf::fetch_config& config,
                                         const conf::mailbox& mailbox, const run_options& options) {
  mailbox_outcome out;
  const std::string session = lg::new_session_id();
  auto opened = state_store::open(config.state_dir, mailbox.address);
  if (opened.status == state_store::open_status::busy) {
    lg::info("fetch.skipped",
             {{"session", session}, {"mailbox", mailbox.address}, {"reason", opened.error}});
    out.result = mailbox_outcome::status::busy;
    co_return out;
  }
  if (!opened.store) co_return fail(out, opened.error, false);
  state_store& state = *opened.store;
  std::optional<conf::delivery_target> target = config.deliver;
  if (!mailbox.deliver.empty()) target = conf::parse_target(mailbox.deliver, nullptr);
  if (target->kind != conf::target_kind::maildir && target->kind != conf::target_kind::stdout_mbox)
    co_return fail(out, "delivery to " + target->to_string() + " is not implemented yet", false);
  const bool keep = config.keep.value_or(mailbox.pec);

  pop3_params p;
  p.endpoint = *mailbox.pop3;
  std::string error;
  if (p.endpoint.tls != conf::tls_mode::none) {
    p.tls = tunnel::tls_context::create(mailbox.tls, conf::tunnel_mode::client, error);
    if (!p.tls) co_return fail(out, error, false);
  }
  p.login = mailbox.login;
  p.password = [&mailbox](std::string& e) { return conf::mailbox_password(mailbox, &e); };
  p.connect_timeout = config.timeouts.connect;
  p.handshake_timeout = config.timeouts.handshake;
  p.reply_timeout = config.timeouts.command;
  p.session = session;
  p.trace = options.trace;
  pop3_client client(co_await asio::this_coro::executor, p);
  pop3_result r = co_await client.async_open();
  if (!r.ok())
    co_return fail(out, r.detail + (r.server.empty() ? "" : ": " + r.server),
                   r.kind != failure_kind::auth && r.kind != failure_kind::tls);
  std::vector<listing_entry> uids, sizes;
  r = co_await client.async_uidl(uids);
  if (r.ok()) r = co_await client.async_list(sizes);
  if (!r.ok()) co_return fail(out, r.detail + (r.server.empty() ? "" : ": " + r.server), true);
  std::map<std::uint32_t, std::uint64_t> size_of;
  for (const auto& e : sizes) size_of[e.number] = e.size;

  const std::int64_t now = now_seconds();
  for (const auto& e : uids) {
    if (config.max_messages_per_run && out.delivered >= config.max_messages_per_run) break;
    const uid_record* rec = state.find(e.uid);
    if (rec && rec->outcome == uid_outcome::delivered) {
      const bool expired =
          config.delete_after &&
          now - rec->time >=
              std::chrono::duration_cast<std::chrono::seconds>(*config.delete_after).count();
      if (keep && expired && !options.dry_run) {
        r = co_await client.async_dele(e.number);
        if (r.ok()) ++out.deleted;
      }
      continue;
    }
    if (rec && !options.retry_failed) continue;  // failed permanently before
    const std::uint64_t size = size_of[e.number];
    if (config.max_message_size && size > config.max_message_size &&
        config.oversize == conf::oversize_action::skip) {
      lg::warn(
          "fetch.oversize",
          {{"session", session}, {"mailbox", mailbox.address}, {"uid", e.uid}, {"size", size}});
      ++out.skipped;
      continue;
    }
    if (options.dry_run) {
      lg::info("fetch.would_fetch", {{"mailbox", mailbox.address}, {"uid", e.uid}, {"size", size}});
      continue;
    }
    local_delivery delivery(*target, options.stdout_fd);
    std::string prefix;
    bool ok = delivery.begin(mailbox.address, error) &&
              delivery.write(
                  received_header(p.endpoint.addr.host,
                                  p.endpoint.tls == conf::tls_mode::none ? "POP3" : "POP3S", e.uid,
                                  mailbox.deliver_to.empty() ? mailbox.address : mailbox.deliver_to,
                                  options.hostname, now),
                  error);
    if (!ok) co_return fail(out, error, true);
    r = co_await client.async_retr(e.number, [&](const std::string& bytes) -> awaitable<bool> {
      if (prefix.size() < classify_prefix) prefix.append(bytes, 0, classify_prefix - prefix.size());
      co_return delivery.write(bytes, error);
    });
    if (!r.ok()) co_return fail(out, error.empty() ? r.detail : error, true);
    if (!delivery.commit(error)) co_return fail(out, error, true);
    if (!state.record(e.uid, uid_outcome::delivered, now, error)) co_return fail(out, error, true);
    ++out.delivered;
    pec_info pec = classify_message(prefix);
    lg::info("fetch.delivered", {{"session", session},
                                 {"mailbox", mailbox.address},
                                 {"uid", e.uid},
                                 {"size", size},
                                 {"pec", to_string(pec.kind)},
                                 {"ref", pec.referenced_message_id},
                                 {"target", target->to_string()}});
    if (!keep) {
      r = co_await client.async_dele(e.number);
      if (r.ok()) ++out.deleted;
    }
  }
  r = co_await client.async_quit();  // DELE takes effect only now
  if (!state.compact(error)) co_return fail(out, error, true);
  co_return out;
}

}  // namespace postern::fetch
