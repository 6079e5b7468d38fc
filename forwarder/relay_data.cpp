// relay_transaction's DATA phase: header checks, then the body streamed to the upstream.

#include "cli/log.hpp"
#include "relay.hpp"

namespace postern::forwarder {

namespace lg = postern::log;
using asio::awaitable;
using status = message_source::status;

namespace {

/// Length of the header fields in `head`, without the empty line that ends them.
std::size_t fields_length(const std::string& head) {
  auto end = smtp::header_end(head);
  if (!end) return head.size();  // the message ended inside its header
  return *end - (*end >= 2 && head[*end - 2] == '\r' ? 2 : 1);
}

}  // namespace

void relay_transaction::audit_refusal(const char* stage, const smtp::reply& r,
                                      const std::vector<std::string>* recipients) {
  static const std::vector<std::string> none;
  audit(r.transient() ? "deferred" : "rejected", r, recipients ? recipients : &none, stage);
}

void relay_transaction::audit(const std::string& outcome, const smtp::reply& final_reply,
                              const std::vector<std::string>* recipients, const char* stage) {
  const char* event = outcome == "relayed" ? "msg.relayed" : "msg.not_relayed";
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started_);
  lg::event(outcome == "relayed" ? lg::level::info : lg::level::warn, event,
            {{"session", session_},
             {"mailbox", route_.mailbox ? route_.mailbox->address : ""},
             {"from", from_ ? from_->address : ""},
             {"rcpts", recipients ? recipients->size() : accepted_.size()},
             {"upstream", upstream_name()},
             {"upstream_tls", upstream_tls_},
             {"size", size_},
             {"message_id", message_id_},
             {"stage", stage},
             {"outcome", outcome},
             {"reply", final_reply.one_line()},
             {"ms", elapsed.count()}});
  if (!rt_.audit.enabled()) return;
  cli::audit_record rec;
  rec.session = session_;
  rec.client = client_;
  rec.mailbox = route_.mailbox ? route_.mailbox->address : "";
  rec.upstream = upstream_name();
  rec.mail_from = from_ ? from_->address : "";
  if (recipients)
    rec.recipients = *recipients;
  else
    for (const auto& r : accepted_) rec.recipients.push_back(r.address);
  rec.message_id = message_id_;
  rec.size = size_;
  rec.sha256 = sha256_;
  rec.outcome = outcome;
  rec.stage = stage;
  rec.reply = final_reply.one_line();
  rec.edits = edits_;
  rec.uncertain = final_reply_lost_;
  rt_.audit.write(rec);
}

awaitable<std::optional<smtp::reply>> relay_transaction::refuse(message_source& source, status st,
                                                                smtp::reply r) {
  status end = co_await drain(source, st);
  if (end == status::failed) co_return std::nullopt;
  audit(r.transient() ? "deferred" : "rejected", r);
  std::optional<smtp::reply> out = r;
  co_return out;
}

awaitable<void> relay_transaction::send_body(const std::string& bytes, body_progress& p) {
  if (p.failure) co_return;  // decided already; the client is answered at its end of data
  size_ += bytes.size();
  smtp::reply limit = check_size_limit(*route_.mailbox, size_, p.recipients);
  if (size_ > config_.max_message_size)
    limit = smtp::make_reply(
        552, "5.3.4",
        "message exceeds the limit of " + std::to_string(config_.max_message_size) + " bytes");
  if (limit.code) {
    p.failure = limit;
    co_return;
  }
  p.sha.update(bytes);
  if (p.spool && !p.spool->write(bytes)) {
    p.failure = smtp::make_reply(451, "4.3.0", p.spool->error());
    co_return;
  }
  smtp::client_result w = co_await upstream_->async_write_body(bytes.data(), bytes.size());
  if (!w.ok()) p.failure = upstream_failure(w);
}

awaitable<smtp::reply> relay_transaction::route_by_header(const smtp::header_block& headers) {
  route by_header = route_header(config_, headers, route_);
  if (!by_header.mailbox) co_return by_header.refusal;
  if (upstream_) co_return smtp::reply{};
  smtp::reply failure = co_await open_upstream(by_header);
  if (failure.code) co_return failure;
  smtp::reply answer = co_await upstream_mail();
  if (!answer.positive()) co_return answer;
  for (const auto& to : accepted_) {
    answer = co_await upstream_rcpt(to);
    if (!answer.positive()) {
      answer.lines.insert(answer.lines.begin(), "recipient <" + to.address + ">:");
      co_return answer;
    }
  }
  co_return smtp::reply{};
}

awaitable<smtp::reply> relay_transaction::prepare(outgoing& out) {
  for (const auto& r : accepted_) out.recipients.push_back(r.address);
  if (pec_) {
    submission_plan plan = plan_pec_submission(*route_.mailbox, from_->address, out.recipients,
                                               out.headers, config_.bcc, refused_);
    if (plan.refusal.code) co_return plan.refusal;
    edits_ = apply_pec_edits(out.headers, config_.receipt_type, config_.hostname);
    if (auto id = out.headers.find("Message-ID")) message_id_ = id->value();
    if (!plan.bcc.empty()) {
      out.bcc = plan.bcc;
      out.recipients = plan.recipients;
      out.spool.emplace();
      if (!out.spool->ok()) co_return smtp::make_reply(451, "4.3.0", out.spool->error());
      smtp::reply narrowed = co_await narrow_to_main(out.recipients);
      if (narrowed.code) co_return narrowed;
    }
  }
  if (auto size = from_->param("SIZE")) {
    smtp::reply r = check_size_limit(
        *route_.mailbox, std::strtoull(size->value.c_str(), nullptr, 10), out.recipients.size());
    if (r.code) co_return r;
  }
  smtp::client_result r = co_await upstream_->async_data();
  if (!r.ok()) co_return r.server.code ? r.server : upstream_failure(r);
  co_return smtp::reply{};
}

std::optional<smtp::reply> relay_transaction::unsendable(const message_source& source) {
  if (source.ambiguous())
    return smtp::make_reply(550, "5.6.0",
                            "a line starting with '.' follows a bare LF (servers disagree where "
                            "such a message ends); send CRLF line endings");
  if (source.bare_cr())
    return smtp::make_reply(550, "5.6.0",
                            "the message holds a bare CR (a CR not followed by LF; servers "
                            "disagree where such a message ends); send CRLF line endings");
  return std::nullopt;
}

awaitable<std::optional<smtp::reply>> relay_transaction::stream(message_source& source,
                                                                std::string head, status st) {
  const std::size_t fields_len = fields_length(head);
  outgoing out;
  out.headers = smtp::header_block::parse(std::string_view(head).substr(0, fields_len));
  if (auto id = out.headers.find("Message-ID")) message_id_ = id->value();
  if (config_.match != conf::sender_match::envelope) {  // routing by the From: header
    smtp::reply refusal = co_await route_by_header(out.headers);
    if (refusal.code) co_return co_await refuse(source, st, refusal);
  }
  smtp::reply refusal = co_await prepare(out);
  if (refusal.code) co_return co_await refuse(source, st, refusal);

  body_progress progress;
  progress.recipients = out.recipients.size();
  co_await send_body(out.headers.serialize(), progress);
  progress.spool = out.spool ? &*out.spool : nullptr;
  co_await send_body(head.substr(fields_len), progress);
  head = std::string();
  std::string chunk;
  while (st == status::more) {
    chunk.clear();
    st = co_await source.read(chunk);
    if (!chunk.empty()) co_await send_body(chunk, progress);
  }
  if (st == status::failed) {
    lg::info("msg.abandoned", {{"session", session_},
                               {"reason", source.error()},
                               {"size", size_},
                               {"note", "upstream transaction dropped unsent"}});
    finish_upstream(false);
    co_return std::nullopt;
  }
  if (!progress.failure) progress.failure = unsendable(source);
  sha256_ = progress.sha.hex_final();
  co_return co_await end_message(out, progress.failure);
}

awaitable<smtp::reply> relay_transaction::end_message(outgoing& out,
                                                      const std::optional<smtp::reply>& failure) {
  if (failure) {
    // The upstream never sees an end of data, so it delivers nothing.
    finish_upstream(false);
    audit(failure->transient() ? "deferred" : "rejected", *failure);
    co_return *failure;
  }
  smtp::client_result r = co_await upstream_->async_end_data();
  if (!r.server.code) {
    // Lost after the final dot: the upstream may or may not have taken it. A 4yz makes the
    // client retry, so the worst case is a duplicate, never a loss (RFC 1047).
    finish_upstream(false);
    smtp::reply deferred = upstream_failure(r, true);
    final_reply_lost_ = true;
    audit("deferred", deferred);
    co_return deferred;
  }
  audit(r.server.positive()    ? "relayed"
        : r.server.transient() ? "deferred"
                               : "rejected",
        r.server, &out.recipients);
  if (!out.bcc.empty() && r.server.positive()) {
    smtp::reply combined = co_await send_copies(out.headers, r.server, out.bcc, *out.spool);
    finish_upstream(upstream_ && upstream_->reusable());
    co_return combined;
  }
  finish_upstream(true);
  co_return r.server;
}

}  // namespace postern::forwarder
