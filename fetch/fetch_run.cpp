#include "fetch_run.hpp"

#include <unistd.h>

#include <chrono>
#include <map>
#include <optional>

#include <asio/this_coro.hpp>

#include "cli/log.hpp"
#include "delivery.hpp"
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

/// RETR commands in flight with a pipelining server (the one being read included).
constexpr std::size_t retr_window = 4;

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// The envelope sender for local delivery: the message's Return-Path, else the mailbox.
std::string envelope_sender(const std::string& head, const std::string& mailbox) {
  auto end = forwarder::header_end(head);
  auto block =
      forwarder::header_block::parse(std::string_view(head).substr(0, end ? *end : head.size()));
  const auto* rp = block.find("Return-Path");
  if (!rp) return mailbox;
  std::string value = rp->value();
  auto open = value.find('<'), close = value.rfind('>');
  if (open != std::string::npos && close != std::string::npos && close > open)
    return value.substr(open + 1, close - open - 1);
  return value;
}

/// One retrieved message on its way to the target: the header is held until complete (the
/// envelope sender comes from it), then everything streams. A refusal by the target does not
/// stop the retrieval, so the POP3 session stays usable for the next message.
struct message_pipe {
  delivery& target;
  std::string recipient, mailbox, received;
  std::string head, prefix;  ///< prefix: what classification reads (the body only for PEC)
  bool started = false, collect = true;
  std::optional<delivery_result> refused;

  awaitable<bool> start() {
    started = true;
    // Only receipts and envelopes have a daticert.xml worth looking for; other mail is not
    // copied (a 1 MiB message would otherwise cost a 1 MiB copy).
    auto end = forwarder::header_end(head);
    const pec_kind kind =
        classify_headers(forwarder::header_block::parse(
                             std::string_view(head).substr(0, end ? *end : head.size())))
            .kind;
    collect = kind != pec_kind::not_pec && kind != pec_kind::anomalia;
    delivery_result d = co_await target.begin(envelope_sender(head, mailbox), recipient);
    if (d.ok()) d = co_await target.write(received);
    if (d.ok()) d = co_await target.write(head);
    head.clear();
    if (!d.ok()) refused = d;
    co_return true;
  }
  awaitable<bool> feed(const std::string& bytes) {
    if (collect && prefix.size() < classify_prefix)
      prefix.append(bytes, 0, classify_prefix - prefix.size());
    if (refused) co_return true;  // read on to the end, deliver nothing
    if (!started) {
      head += bytes;
      if (!forwarder::header_end(head) && head.size() < max_head) co_return true;
      co_return co_await start();
    }
    delivery_result d = co_await target.write(bytes);
    if (!d.ok()) refused = d;
    co_return true;
  }
  static constexpr std::size_t max_head = 1024 * 1024;
};

/// The audit line of one message: what it was (PEC class, daticert) and what became of it.
void audit(forwarder::audit_log* log, const std::string& session, const conf::mailbox& mailbox,
           const listing_entry& e, std::uint64_t size, const std::string& outcome,
           const std::string& target, const std::string& reply, const pec_info& pec) {
  if (!log || !log->enabled()) return;
  forwarder::json_line line;
  line.field("session", session)
      .field("mailbox", mailbox.address)
      .field("uid", e.uid)
      .number("size", size)
      .field("outcome", outcome)
      .field("target", target)
      .field("reply", reply)
      .field("pec", to_string(pec.kind))
      .field("ref_message_id", pec.referenced_message_id);
  if (pec.cert) {
    const daticert& d = *pec.cert;
    line.field("tipo", d.tipo)
        .field("errore", d.errore)
        .field("mittente", d.mittente)
        .list("destinatari", d.destinatari)
        .field("consegna", d.consegna)
        .field("data", d.giorno + " " + d.ora + " " + d.zona)
        .field("identificativo", d.identificativo)
        .field("msgid", d.msgid)
        .field("errore_esteso", d.errore_esteso)
        .field("gestore", d.gestore);
  }
  if (!pec.problem.empty() && pec.kind != pec_kind::not_pec)
    line.field("daticert_problem", pec.problem);
  log->append(line.finish());
}

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
  p.retrieve_timeout = config.timeouts.retrieve;
  p.session = session;
  p.trace = options.trace;
  auto executor = co_await asio::this_coro::executor;
  delivery_context context{options.hostname, options.stdout_fd, config.timeouts, session,
                           options.trace,    mailbox.address,   &config.delivery};
  auto target_impl = make_delivery(executor, *target, context, error);
  if (!target_impl) co_return fail(out, error, false);
  pop3_client client(executor, p);
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
  // First what to do with each message; then the retrieval, several RETRs in flight when the
  // server allows pipelining.
  std::vector<const listing_entry*> todo;
  for (const auto& e : uids) {
    const uid_record* rec = state.find(e.uid);
    if (rec && rec->outcome == uid_outcome::delivered) {
      const bool expired =
          config.delete_after &&
          now - rec->time >=
              std::chrono::duration_cast<std::chrono::seconds>(*config.delete_after).count();
      // Delivered earlier: delete it now if it is not kept, or kept long enough (a run that
      // was killed before QUIT recorded it, but its DELE never took effect).
      if ((!keep || expired) && !options.dry_run) co_await client.async_dele(e.number);
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
    if (config.max_messages_per_run && todo.size() >= config.max_messages_per_run) continue;
    if (options.dry_run) {
      lg::info("fetch.would_fetch", {{"mailbox", mailbox.address}, {"uid", e.uid}, {"size", size}});
      continue;
    }
    todo.push_back(&e);
  }
  std::size_t requested = 0;
  for (std::size_t i = 0; i < todo.size(); ++i) {
    const listing_entry& e = *todo[i];
    const std::uint64_t size = size_of[e.number];
    // Keep the server a few messages ahead: it reads and encrypts the next ones while this
    // one is delivered. Deliver -> record -> DELE still happens one message at a time.
    while (requested < todo.size() && requested < i + retr_window)
      client.request_retr(todo[requested++]->number);
    const std::string recipient = mailbox.deliver_to.empty() ? mailbox.address : mailbox.deliver_to;
    message_pipe pipe{*target_impl, recipient, mailbox.address,
                      received_header(p.endpoint.addr.host,
                                      p.endpoint.tls == conf::tls_mode::none ? "POP3" : "POP3S",
                                      e.uid, recipient, options.hostname, now)};
    const pop3_client::body_sink feed = [&pipe](const std::string& bytes) -> awaitable<bool> {
      co_return co_await pipe.feed(bytes);
    };
    r = co_await client.async_retr(e.number, feed);
    if (r.ok() && !pipe.started) co_await pipe.start();  // a message with no body
    if (!r.ok()) {
      target_impl->abort();
      co_return fail(out, r.detail + (r.server.empty() ? "" : ": " + r.server), true);
    }
    delivery_result d;
    if (pipe.refused) {
      d = *pipe.refused;
      target_impl->abort();
    } else {
      d = co_await target_impl->commit();
    }
    if (d.result == delivery_result::status::temporary) {
      // Left on the server for the next run; later messages would meet the same problem.
      lg::warn("fetch.deferred", {{"session", session},
                                  {"mailbox", mailbox.address},
                                  {"uid", e.uid},
                                  {"reason", d.detail}});
      audit(options.audit, session, mailbox, e, size, "deferred", target->to_string(), d.detail,
            classify_message(pipe.prefix));
      co_await client.async_quit();
      co_return fail(out, "delivery deferred: " + d.detail, true);
    }
    if (d.result == delivery_result::status::permanent) {
      // Kept on the server and not tried again until --retry-failed.
      lg::error("fetch.refused", {{"session", session},
                                  {"mailbox", mailbox.address},
                                  {"uid", e.uid},
                                  {"reply", d.detail}});
      audit(options.audit, session, mailbox, e, size, "refused", target->to_string(), d.detail,
            classify_message(pipe.prefix));
      if (!state.record(e.uid, uid_outcome::failed, now, error)) co_return fail(out, error, true);
      ++out.failed_messages;
      continue;
    }
    std::string& prefix = pipe.prefix;
    if (!state.record(e.uid, uid_outcome::delivered, now, error)) {
      // Delivered but not recorded: no DELE for it (the next run delivers it again, the one
      // documented duplicate). QUIT so the deletions of recorded messages take effect.
      lg::error("fetch.state_failed", {{"session", session},
                                       {"mailbox", mailbox.address},
                                       {"uid", e.uid},
                                       {"error", error}});
      co_await client.async_quit();
      co_return fail(out, error, true);
    }
    ++out.delivered;
    pec_info pec = classify_message(prefix);
    audit(options.audit, session, mailbox, e, size, "delivered", target->to_string(), d.detail,
          pec);
    lg::info("fetch.delivered", {{"session", session},
                                 {"mailbox", mailbox.address},
                                 {"uid", e.uid},
                                 {"size", size},
                                 {"pec", to_string(pec.kind)},
                                 {"ref", pec.referenced_message_id},
                                 {"target", target->to_string()}});
    if (!keep) co_await client.async_dele(e.number);
  }
  r = co_await client.async_quit();  // DELE takes effect only now
  if (r.ok()) out.deleted = client.deletions();
  if (!state.compact(error)) co_return fail(out, error, true);
  co_return out;
}

}  // namespace postern::fetch
