#include "cli/admin/receipt_status.hpp"

#include <algorithm>

#include "conf/mailbox_registry.hpp"

namespace postern::admin {

using fetch::pec_kind;

const char* to_string(recipient_state s) {
  switch (s) {
    case recipient_state::pending: return "pending";
    case recipient_state::delivered: return "delivered";
    case recipient_state::failed: return "failed";
  }
  return "?";
}

const char* to_string(message_status s) {
  switch (s) {
    case message_status::delivered: return "delivered";
    case message_status::partial: return "partial";
    case message_status::failed: return "failed";
    case message_status::pending: return "pending";
    case message_status::overdue: return "overdue";
    case message_status::uncertain: return "uncertain";
  }
  return "?";
}

namespace {

std::string minutes(std::int64_t seconds) {
  return seconds >= 3600 ? std::to_string(seconds / 3600) + " h"
                         : std::to_string(seconds / 60) + " min";
}

/// The recipient a delivery receipt is about, added when the submission did not list it.
recipient_report& recipient_of(message_report& m, const std::string& address) {
  for (auto& r : m.recipients)
    if (conf::same_address(r.address, address)) return r;
  m.recipients.push_back({address});
  return m.recipients.back();
}

/// Applies one receipt, in time order; a final word (delivered, failed) is not undone by a
/// later warning.
void apply(message_report& m, const receipt& r) {
  switch (r.kind) {
    case pec_kind::accettazione:
      if (!m.accepted_at) m.accepted_at = r.time;
      if (m.provider_id.empty()) m.provider_id = r.provider_id;
      break;
    case pec_kind::non_accettazione:
      m.not_accepted = r.error.empty() ? "non-accettazione" : r.error;
      break;
    case pec_kind::rilevazione_virus:
      m.not_accepted = "rilevazione-virus" + (r.error.empty() ? "" : ": " + r.error);
      break;
    case pec_kind::avvenuta_consegna:
    case pec_kind::errore_consegna: {
      if (r.recipient.empty()) break;
      recipient_report& rr = recipient_of(m, r.recipient);
      if (rr.state != recipient_state::pending) break;
      rr.state = r.kind == pec_kind::avvenuta_consegna ? recipient_state::delivered
                                                       : recipient_state::failed;
      rr.time = r.time;
      rr.reason = rr.state == recipient_state::failed
                      ? (r.error.empty() ? "errore-consegna" : r.error)
                      : "";
      break;
    }
    case pec_kind::preavviso_errore_consegna: {
      if (r.recipient.empty()) break;
      recipient_report& rr = recipient_of(m, r.recipient);
      if (rr.state == recipient_state::pending)
        rr.reason = "preavviso-errore-consegna: not delivered yet" +
                    (r.error.empty() ? std::string() : ": " + r.error);
      break;
    }
    default: break;  // presa-in-carico and envelopes decide nothing here
  }
}

/// The overall status once the receipts are applied.
void conclude(message_report& m, std::int64_t now, const receipt_policy& policy) {
  const submission& s = m.sent;
  if (!m.not_accepted.empty()) {
    m.status = message_status::failed;
    m.why = "not accepted by the provider: " + m.not_accepted;
    return;
  }
  // A delivery receipt proves acceptance even when the accettazione was not seen.
  const bool accepted =
      m.accepted_at || std::any_of(m.recipients.begin(), m.recipients.end(), [](const auto& r) {
        return r.state != recipient_state::pending;
      });
  if (!accepted) {
    if (s.outcome == "rejected") {
      m.status = message_status::failed;
      m.why = "refused at submission: " + s.reply;
    } else if (s.uncertain) {
      m.status = message_status::uncertain;
      m.why = "the provider never answered the end of the message: it may have taken it";
    } else if (now - s.time >= policy.accept_within) {
      m.status = message_status::overdue;
      m.why = s.outcome == "relayed"
                  ? "no accettazione within " + minutes(policy.accept_within) + " of submission"
                  : "deferred (" + s.reply + ") and not sent again within " +
                        minutes(policy.accept_within);
    } else {
      m.status = message_status::pending;  // relayed and waiting, or deferred: the MTA retries
    }
    return;
  }
  std::size_t delivered = 0, failed = 0;
  for (const auto& r : m.recipients) {
    delivered += r.state == recipient_state::delivered;
    failed += r.state == recipient_state::failed;
  }
  const std::size_t n = m.recipients.size();
  if (n > 0 && delivered == n) {
    m.status = message_status::delivered;
  } else if (n > 0 && delivered + failed == n) {
    m.status = delivered > 0 ? message_status::partial : message_status::failed;
    if (delivered == 0) m.why = "not delivered to any recipient";
  } else if (now - m.accepted_at.value_or(s.time) >= policy.deliver_within) {
    m.status = message_status::overdue;
    m.why = std::to_string(n - delivered - failed) + " recipient(s) without a delivery receipt " +
            minutes(policy.deliver_within) + " after acceptance";
  } else {
    m.status = message_status::pending;
  }
}

}  // namespace

message_report assess(const submission& sent, const std::vector<receipt>& receipts,
                      std::int64_t now, const receipt_policy& policy) {
  message_report m;
  m.sent = sent;
  for (const auto& address : sent.recipients) m.recipients.push_back({address});
  std::vector<const receipt*> ordered;
  for (const auto& r : receipts) ordered.push_back(&r);
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const receipt* a, const receipt* b) { return a->time < b->time; });
  for (const receipt* r : ordered) apply(m, *r);
  conclude(m, now, policy);
  return m;
}

const submission& submission_that_counts(const std::vector<submission>& lines) {
  const submission* pick = &lines.back();
  for (const auto& s : lines)
    if (s.uncertain && pick->outcome != "relayed") pick = &s;
  for (const auto& s : lines)
    if (s.outcome == "relayed") pick = &s;
  return *pick;
}

}  // namespace postern::admin
