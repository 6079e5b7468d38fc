#include "message_fetch.hpp"

#include <optional>

#include "cli/log.hpp"
#include "local_targets.hpp"
#include "pec_receipt.hpp"
#include "tunnel/net/digest.hpp"
#include "tunnel/net/secret_source.hpp"

namespace postern::fetch {

namespace lg = postern::log;
using asio::awaitable;

namespace {

/// Bytes of each message kept for classification: receipts are small; an envelope's
/// daticert.xml comes before the (possibly large) original in practice.
constexpr std::size_t classify_prefix = 2 * 1024 * 1024;

/// The envelope sender for local delivery: the message's Return-Path, else the mailbox.
std::string envelope_sender(const smtp::header_block& block, const std::string& mailbox) {
  const auto* rp = block.find("Return-Path");
  if (!rp) return mailbox;
  std::string value = rp->value();
  auto open = value.find('<'), close = value.rfind('>');
  if (open != std::string::npos && close != std::string::npos && close > open)
    return value.substr(open + 1, close - open - 1);
  return value;
}

}  // namespace

void set_failed(mailbox_outcome& out, std::string error, bool temporary) {
  out.result = mailbox_outcome::status::failed;
  out.error = std::move(error);
  out.temporary = temporary;
}

listed_action report_listed(const listed_decision& d, const message_ref& m,
                            const std::optional<uid_record>& recorded, state_store& state,
                            const std::string& session, const conf::mailbox& mailbox,
                            mailbox_outcome& out) {
  if (d.learnt) state.note(m.key, *d.learnt);
  if (d.uid_reused)
    lg::warn("fetch.uid_reused", {{"session", session},
                                  {"mailbox", mailbox.address},
                                  {"uid", m.label},
                                  {"recorded_size", recorded ? recorded->size : -1},
                                  {"listed_size", m.size},
                                  {"effect",
                                   "another message under a UID already recorded: treated as "
                                   "new, the server's UIDs are not unique"}});
  switch (d.action) {
    case listed_action::hold_refused: ++out.held; break;  // said again at every run's end
    case listed_action::skip_oversize:
      lg::warn(
          "fetch.oversize",
          {{"session", session}, {"mailbox", mailbox.address}, {"uid", m.label}, {"size", m.size}});
      ++out.skipped;
      break;
    case listed_action::would_fetch:
      lg::info("fetch.would_fetch",
               {{"mailbox", mailbox.address}, {"uid", m.label}, {"size", m.size}});
      break;
    default: break;
  }
  return d.action;
}

std::optional<session_params> session_params_for(const conf::fetch_config& config,
                                                 const conf::mailbox& mailbox,
                                                 const conf::endpoint& endpoint,
                                                 const run_options& options,
                                                 const std::string& session, std::string& error) {
  session_params p;
  p.endpoint = endpoint;
  if (endpoint.tls != conf::tls_mode::none) {
    p.tls = net::tls_context::create(mailbox.tls, conf::tunnel_mode::client, error);
    if (!p.tls) return std::nullopt;
  }
  p.login = mailbox.login;
  p.password = net::password_of(mailbox, config.timeouts.password_command);
  p.connect_timeout = config.timeouts.connect;
  p.handshake_timeout = config.timeouts.handshake;
  p.reply_timeout = config.timeouts.command;
  p.retrieve_timeout = config.timeouts.retrieve;
  p.message_timeout = config.timeouts.message;
  p.session = session;
  p.trace = options.trace;
  return p;
}

std::unique_ptr<delivery> delivery_for(const asio::any_io_executor& ex,
                                       const conf::fetch_config& config,
                                       const conf::mailbox& mailbox, const run_options& options,
                                       const std::string& session,
                                       const conf::delivery_target& target, std::string& error) {
  delivery_context context{options.hostname, options.stdout_fd, config.timeouts, session,
                           options.trace,    mailbox.address,   &config.delivery};
  return make_delivery(ex, target, context, error);
}

/// One retrieved message on its way to the target: the header is held until complete (the
/// envelope sender comes from it), then everything streams. A refusal by the target does not
/// stop the retrieval, so the POP3 session stays usable for the next message; a message that
/// grows past `limit` (whatever the server's LIST said) stops it.
struct message_fetch::message_pipe {
  delivery& target;
  std::string recipient, mailbox, received;
  std::uint64_t limit = 0;       ///< bytes this message may have, 0 = no limit
  std::string head, prefix;      ///< prefix: what classification reads (the body only for PEC)
  std::string from, message_id;  ///< of the message itself, for the audit line
  std::string header_digest;     ///< SHA-256 (hex) of the header section as the server sent it
  std::uint64_t received_bytes = 0;
  bool started = false, collect = true, too_big = false;
  std::optional<delivery_result> refused;

  awaitable<bool> start() {
    started = true;
    // Only receipts and envelopes have a daticert.xml worth looking for; other mail is not
    // copied (a 1 MiB message would otherwise cost a 1 MiB copy).
    auto end = smtp::header_end(head);
    const std::string_view header = std::string_view(head).substr(0, end ? *end : head.size());
    net::sha256 digest;
    digest.update(header);
    header_digest = digest.hex_final();
    const auto block = smtp::header_block::parse(header);
    if (const auto* f = block.find("From")) from = f->value();
    if (const auto* id = block.find("Message-ID")) message_id = id->value();
    const pec_kind kind = classify_headers(block).kind;
    collect = kind != pec_kind::not_pec && kind != pec_kind::anomalia;
    const std::string sender = envelope_sender(block, mailbox);
    delivery_result d = co_await target.begin(sender, recipient);
    if (d.ok()) d = co_await target.write(received);
    if (d.ok()) d = co_await target.write(head);
    head.clear();
    if (!d.ok()) refused = d;
    co_return true;
  }
  awaitable<bool> feed(const std::string& bytes) {
    received_bytes += bytes.size();
    if (limit && received_bytes > limit) {
      too_big = true;
      co_return false;  // a server that lies in LIST, or never ends: stop reading
    }
    if (collect && prefix.size() < classify_prefix)
      prefix.append(bytes, 0, classify_prefix - prefix.size());
    if (refused) co_return true;  // read on to the end, deliver nothing
    if (!started) {
      head += bytes;
      if (!smtp::header_end(head) && head.size() < max_head) co_return true;
      co_return co_await start();
    }
    delivery_result d = co_await target.write(bytes);
    if (!d.ok()) refused = d;
    co_return true;
  }
  static constexpr std::size_t max_head = 1024 * 1024;
};

/// Retrieve -> target -> record.
awaitable<message_fetch::step> message_fetch::run(const message_ref& m) {
  message_pipe pipe{c_.target, c_.recipient, c_.mailbox.address,
                    received_header(c_.server.addr.host, c_.source.protocol(), m.key, c_.recipient,
                                    c_.options.hostname, c_.now),
                    c_.plan.byte_limit()};
  const message_source::body_sink feed = [&pipe](const std::string& bytes) -> awaitable<bool> {
    co_return co_await pipe.feed(bytes);
  };
  bool found = true;
  session_result r = co_await c_.source.retrieve(m.number, feed, found);
  if (r.ok() && !found) {
    c_.target.abort();
    lg::info("fetch.gone", {{"session", c_.session},
                            {"mailbox", c_.mailbox.address},
                            {"uid", m.label},
                            {"effect", "no longer on the server: nothing to deliver"}});
    co_return step::gone;
  }
  if (r.ok() && !pipe.started) co_await pipe.start();  // a message with no body
  if (!r.ok()) {
    c_.target.abort();
    if (pipe.too_big) co_return stop_oversized(m, pipe);
    set_failed(c_.out, describe(r), true);
    co_return step::stop;
  }
  delivery_result d;
  if (pipe.refused) {
    d = *pipe.refused;
    c_.target.abort();
  } else {
    d = co_await c_.target.commit();
  }
  co_return co_await settle(m, pipe, d);
}

/// What the target said, as the plan says: recorded, deleted, or the run stops.
awaitable<message_fetch::step> message_fetch::settle(const message_ref& m, const message_pipe& pipe,
                                                     const delivery_result& d) {
  using status = delivery_result::status;
  const target_said said = d.result == status::delivered   ? target_said::delivered
                           : d.result == status::temporary ? target_said::temporary
                                                           : target_said::permanent;
  const delivery_step next = c_.plan.after_delivery(said, !m.key.empty());
  const pec_info pec = classify_message(pipe.prefix);
  const char* outcome = said == target_said::delivered   ? "delivered"
                        : said == target_said::temporary ? "deferred"
                                                         : "refused";
  if (said != target_said::delivered) {
    lg::warn(said == target_said::temporary ? "fetch.deferred" : "fetch.refused",
             {{"session", c_.session},
              {"mailbox", c_.mailbox.address},
              {"uid", m.label},
              {said == target_said::temporary ? "reason" : "reply", d.detail}});
    audit(m, outcome, d.detail, pipe, pec);
  }
  if (said == target_said::permanent) ++c_.out.failed_messages;
  std::string error;
  if (next.record &&
      !c_.state.record(m.key, *next.record, c_.now, static_cast<std::int64_t>(m.size), error,
                       c_.identity ? pipe.header_digest : std::string())) {
    if (said == target_said::delivered)
      lg::error("fetch.state_failed", {{"session", c_.session},
                                       {"mailbox", c_.mailbox.address},
                                       {"uid", m.label},
                                       {"error", error}});
    // No DELE for it; QUIT, so that the deletions of recorded messages take effect.
    const delivery_step stop = fetch_plan::after_record_failure();
    set_failed(c_.out, error, true);
    if (stop.stop) co_await c_.source.stop();
    co_return step::stop;
  }
  if (next.stop) {
    co_await c_.source.stop();
    set_failed(c_.out, "delivery deferred: " + d.detail, true);
    co_return step::stop;
  }
  if (said == target_said::permanent) co_return step::refused;
  ++c_.out.delivered;
  audit(m, outcome, d.detail, pipe, pec);
  lg::info("fetch.delivered", {{"session", c_.session},
                               {"mailbox", c_.mailbox.address},
                               {"uid", m.label},
                               {"size", m.size},
                               {"pec", to_string(pec.kind)},
                               {"ref", pec.referenced_message_id},
                               {"target", c_.target_name.to_string()},
                               {"reply", d.detail}});
  co_return next.dele ? step::delete_it : step::keep_it;
}

/// RETR of a message that grew past max_message_size (its LIST size was wrong): recorded
/// as refused, so that it is not fetched again, and the run ends here (the session is
/// cut mid-message).
message_fetch::step message_fetch::stop_oversized(const message_ref& m, const message_pipe& pipe) {
  lg::warn("fetch.oversize", {{"session", c_.session},
                              {"mailbox", c_.mailbox.address},
                              {"uid", m.label},
                              {"listed_size", m.size},
                              {"received", pipe.received_bytes},
                              {"effect",
                               "more than max_message_size arrived: retrieval stopped, nothing "
                               "delivered, the message stays on the server"}});
  ++c_.out.skipped;
  std::string error;
  if (!m.key.empty() && !c_.state.record(m.key, uid_outcome::failed, c_.now,
                                         static_cast<std::int64_t>(m.size), error)) {
    set_failed(c_.out, error, true);
    return step::stop;
  }
  set_failed(c_.out,
             "message " + m.label +
                 " exceeded max_message_size while it was retrieved; the rest "
                 "of the mailbox waits for the next run",
             true);
  return step::stop;
}

/// The audit line of one message: what it was (PEC class, daticert) and what became of it.
void message_fetch::audit(const message_ref& m, const std::string& outcome,
                          const std::string& reply, const message_pipe& pipe, const pec_info& pec) {
  cli::audit_log* log = c_.options.audit;
  if (!log || !log->enabled()) return;
  cli::json_line line;
  line.field("session", c_.session)
      .field("mailbox", c_.mailbox.address)
      .field("uid", m.label)
      .number("size", m.size)
      .field("outcome", outcome)
      .field("target", c_.target_name.to_string())
      .field("reply", reply)
      .field("from", pipe.from)
      .field("message_id", pipe.message_id)
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

}  // namespace postern::fetch
