#pragma once
/// Decisions about one submission that need no I/O: which mailbox sends it (routing) and
/// whether it satisfies the PEC formal checks (RFC 6109 §3.1.1) and the provider's limits.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "conf/forwarder_config.hpp"
#include "forwarder/smtp/message_header.hpp"
#include "forwarder/smtp/reply.hpp"

namespace postern::forwarder {

/// Where a message goes: a mailbox, the [default] relay, or nowhere (with the reply to give).
struct route {
  const conf::mailbox* mailbox = nullptr;  ///< the mailbox or the smarthost pseudo-mailbox
  bool smarthost = false;
  smtp::reply refusal;  ///< set when mailbox is null
};

/// Route by envelope sender (MAIL FROM).
route route_sender(const conf::forwarder_config& config, std::string_view sender);

/// Route by the From: header once it is known; `envelope_route` is what MAIL FROM chose
/// (null mailbox when match = "header"). Applies the `match` policy.
route route_header(const conf::forwarder_config& config, const smtp::header_block& headers,
                   const route& envelope_route);

/// The outcome of the checks on one submission.
struct submission_plan {
  smtp::reply refusal;                  ///< code 0: accepted
  std::vector<std::string> recipients;  ///< RCPTs of the main submission
  std::vector<std::string> bcc;         ///< RCPTs sent separately (bcc = "split")
};

/// A recipient the upstream refused at RCPT, with its reply.
struct refused_recipient {
  std::string address;
  std::string reply;
};

/// PEC formal checks: MAIL FROM == From: == mailbox, a To: header, RCPT set == To ∪ Cc,
/// Bcc policy. `accepted` are the RCPTs the upstream accepted; `refused` those it refused
/// (a To/Cc address missing for that reason is the provider's refusal, not the client's).
submission_plan plan_pec_submission(const conf::mailbox& mailbox, std::string_view mail_from,
                                    const std::vector<std::string>& accepted,
                                    const smtp::header_block& headers, conf::bcc_policy bcc,
                                    const std::vector<refused_recipient>& refused = {});

/// The provider's size limit for `size` bytes to `recipients` recipients; code 0 = within.
smtp::reply check_size_limit(const conf::mailbox& mailbox, std::uint64_t size,
                             std::size_t recipients);

/// Header edits for PEC: read-receipt and Bcc fields removed, a Message-ID added when
/// missing, X-TipoRicevuta set when configured. Returns what was changed, for the log.
std::string apply_pec_edits(smtp::header_block& headers, const std::string& receipt_type,
                            const std::string& hostname);

/// The ESMTP parameters of a client's MAIL (or RCPT) that go on to the upstream: only those
/// the forwarder understands and the upstream announced (SIZE, BODY, SMTPUTF8; the DSN ones
/// of RFC 3461 when it offers DSN, never for PEC, where they only produce "ANOMALIA
/// MESSAGGIO" reports). Anything else, AUTH= above all (RFC 4954 §5: the upstream must not
/// take the client's word for who submitted), stays here.
std::vector<std::string> relayed_params(bool pec, const smtp::ehlo_capabilities& caps, bool mail);

/// A new unique Message-ID "<random.time@hostname>".
std::string new_message_id(const std::string& hostname);

}  // namespace postern::forwarder
