#include "relay.hpp"

#include "cli/log.hpp"

namespace postern::forwarder {

namespace lg = postern::log;
using asio::awaitable;
using status = message_source::status;

namespace {

/// Headers are held (bounded) until complete: routing and the PEC rules need them.
constexpr std::size_t max_header_block = 1024 * 1024;

}  // namespace

relay_transaction::relay_transaction(forwarder_runtime& rt, std::string session, std::string client)
    : rt_(rt), config_(rt.config), session_(std::move(session)), client_(std::move(client)) {}

relay_transaction::~relay_transaction() {
  if (upstream_) upstream_->abort();
}

smtp::reply relay_transaction::upstream_failure(const smtp::client_result& r,
                                                bool after_final_dot) const {
  // Whatever went wrong with the upstream before it took the message, the client MTA must
  // keep the message queued: always a 4yz.
  std::string where = upstream_name();
  if (r.kind == smtp::failure_kind::credentials) {
    // Why the secret could not be read (its file, its mode) is for postern's log only: this
    // reply travels to the client and into bounces.
    lg::warn("upstream.credentials_unavailable",
             {{"session", session_},
              {"mailbox", route_.mailbox ? route_.mailbox->address : ""},
              {"error", r.detail}});
    return smtp::make_reply(
        454, "4.7.0",
        "the credentials of " +
            (route_.mailbox ? route_.mailbox->address : std::string("the mailbox")) +
            " cannot be read on this relay (see its log); not accepted, try "
            "again later");
  }
  std::string text = (where.empty() ? "upstream" : where) + ": " + r.detail;
  if (r.server.code) text += (r.detail.empty() ? "" : ": ") + r.server.one_line();
  text += after_final_dot ? "; no answer to the end of the message, which the upstream may "
                            "have taken: try again later"
                          : "; not accepted, try again later";
  switch (r.kind) {
    case smtp::failure_kind::auth: return smtp::make_reply(454, "4.7.0", text);
    case smtp::failure_kind::tls: return smtp::make_reply(454, "4.7.5", text);
    case smtp::failure_kind::timeout: return smtp::make_reply(451, "4.4.2", text);
    case smtp::failure_kind::connection: return smtp::make_reply(451, "4.4.1", text);
    default: return smtp::make_reply(451, "4.3.0", text);
  }
}

std::string relay_transaction::upstream_name() const {
  return route_.mailbox && route_.mailbox->smtp ? route_.mailbox->smtp->to_string() : "";
}

void relay_transaction::finish_upstream(bool reusable) {
  if (!upstream_) return;
  if (reusable)
    rt_.pool->release(*route_.mailbox, std::move(upstream_));
  else
    upstream_->abort();
  upstream_.reset();
}

void relay_transaction::abandon() {
  abandoned_ = true;
  if (upstream_) upstream_->abort();
}

awaitable<smtp::reply> relay_transaction::open_upstream(const route& r, bool admitted) {
  route_ = r;
  pec_ = r.mailbox->pec && !r.smarthost;
  if (!r.mailbox->smtp)
    co_return smtp::make_reply(
        451, "4.3.5", "mailbox " + r.mailbox->address + " has no smtp endpoint configured");
  if (!admitted)
    if (smtp::reply refusal = rt_.pool->admit(*r.mailbox); refusal.code) co_return refusal;
  auto lease = co_await rt_.pool->async_acquire(*r.mailbox, session_);
  if (!lease.client) co_return upstream_failure(lease.failure);
  upstream_ = std::move(lease.client);
  if (abandoned_) upstream_->abort();  // the session was cut while this one was opened
  upstream_reused_ = lease.reused;
  upstream_tls_ = upstream_->tls_version();
  co_return smtp::reply{};
}

awaitable<smtp::reply> relay_transaction::upstream_mail() {
  const auto& caps = upstream_->capabilities();
  if (from_->param("SMTPUTF8") && !caps.smtputf8)
    co_return smtp::make_reply(553, "5.6.7",
                               "the upstream " + route_.mailbox->smtp->to_string() +
                                   " does not support SMTPUTF8 (internationalized addresses)");
  smtp::client_result r =
      co_await upstream_->async_mail(from_->to_wire(relayed_params(pec_, caps, true)));
  if (!r.ok() && upstream_reused_ && !r.server.code) {
    // The idle session died under us; nothing was sent on, so a fresh one is safe.
    lg::debug("upstream.stale", {{"session", session_}, {"detail", r.detail}});
    finish_upstream(false);
    auto lease = co_await rt_.pool->async_acquire(*route_.mailbox, session_);
    if (!lease.client) co_return upstream_failure(lease.failure);
    upstream_ = std::move(lease.client);
    upstream_reused_ = false;
    r = co_await upstream_->async_mail(
        from_->to_wire(relayed_params(pec_, upstream_->capabilities(), true)));
  }
  if (!r.server.code) {
    finish_upstream(false);
    co_return upstream_failure(r);
  }
  co_return r.server;
}

awaitable<smtp::reply> relay_transaction::upstream_rcpt(const smtp::mail_path& to) {
  smtp::client_result r = co_await upstream_->async_rcpt(
      to.to_wire(relayed_params(pec_, upstream_->capabilities(), false)));
  if (!r.server.code) {
    finish_upstream(false);
    co_return upstream_failure(r);
  }
  co_return r.server;
}

awaitable<smtp::reply> relay_transaction::mail(smtp::mail_path from) {
  if (from_) co_return smtp::make_reply(503, "5.5.1", "nested MAIL command");
  if (auto size = from.param("SIZE")) {
    std::uint64_t announced = std::strtoull(size->value.c_str(), nullptr, 10);
    if (announced > config_.max_message_size)
      co_return smtp::make_reply(552, "5.3.4",
                                 "message size exceeds the limit of " +
                                     std::to_string(config_.max_message_size) + " bytes");
  }
  started_ = std::chrono::steady_clock::now();
  if (config_.match == conf::sender_match::header) {
    from_ = from;
    co_return smtp::make_reply(250, "2.1.0", "sender ok; the From: header will choose the mailbox");
  }
  from_ = from;  // for the audit line of a refusal; reset below when MAIL fails
  route r = route_sender(config_, from.address);
  smtp::reply answer = r.refusal;
  if (r.mailbox) answer = co_await open_upstream(r);
  if (r.mailbox && !answer.code) answer = co_await upstream_mail();
  if (!answer.positive()) {
    audit_refusal("mail", answer);
    from_.reset();
    if (upstream_) {
      smtp::client_result rs = co_await upstream_->async_reset();
      finish_upstream(rs.ok());
    }
    route_ = {};
  }
  co_return answer;
}

awaitable<smtp::reply> relay_transaction::rcpt(smtp::mail_path to) {
  if (!from_) co_return smtp::make_reply(503, "5.5.1", "MAIL first");
  std::uint32_t limit = config_.max_recipients;
  if (route_.mailbox && route_.mailbox->limits.max_recipients)
    limit = std::min(limit, route_.mailbox->limits.max_recipients);
  const std::vector<std::string> one = {to.address};
  if (accepted_.size() >= limit) {
    smtp::reply r = smtp::make_reply(
        452, "4.5.3", "too many recipients (at most " + std::to_string(limit) + " per message)");
    audit_refusal("rcpt", r, &one);
    co_return r;
  }
  if (!upstream_) {
    if (route_.mailbox) {  // the upstream session was lost after MAIL
      smtp::reply r = smtp::make_reply(451, "4.4.1", "upstream connection lost; try again later");
      audit_refusal("rcpt", r, &one);
      co_return r;
    }
    accepted_.push_back(to);
    co_return smtp::make_reply(250, "2.1.5", "recipient ok; checked with the upstream at DATA");
  }
  smtp::reply answer = co_await upstream_rcpt(to);
  if (answer.positive()) {
    accepted_.push_back(to);
  } else {
    refused_.push_back({to.address, answer.one_line()});
    audit_refusal("rcpt", answer, &one);
  }
  co_return answer;
}

awaitable<void> relay_transaction::reset() {
  if (upstream_) {
    smtp::client_result r = co_await upstream_->async_reset();
    finish_upstream(r.ok());
  }
  from_.reset();
  accepted_.clear();
  refused_.clear();
  route_ = {};
  pec_ = false;
  upstream_tls_.clear();
  message_id_.clear();
  edits_.clear();
  sha256_.clear();
  size_ = 0;
}

awaitable<status> relay_transaction::drain(message_source& source, status st) {
  std::string scratch;
  while (st == status::more) {
    scratch.clear();
    st = co_await source.read(scratch);
  }
  co_return st;
}

awaitable<std::optional<smtp::reply>> relay_transaction::data(message_source& source) {
  if (!from_ || accepted_.empty()) {
    // The caller checks this before its 354; reaching here is a bug.
    co_return smtp::make_reply(503, "5.5.1", "no valid recipients");
  }
  // Collect the header block.
  std::string head;
  status st = status::more;
  std::optional<std::size_t> end;
  while (st == status::more && !(end = smtp::header_end(head))) {
    if (head.size() > max_header_block) {
      status end_st = co_await drain(source, st);
      if (end_st == status::failed) co_return std::nullopt;
      smtp::reply r = smtp::make_reply(552, "5.3.4", "header block too large (over 1 MiB)");
      audit("rejected", r);
      co_return r;
    }
    st = co_await source.read(head);
  }
  if (st == status::failed) co_return std::nullopt;
  co_return co_await stream(source, std::move(head), st);
}

}  // namespace postern::forwarder
