#pragma once
/// The legal status of one PEC message sent through the forwarder, from what the audit files
/// say: the forwarder's line for its submission and the receipts fetch classified for it
/// (RFC 6109 and the providers' real variants). No I/O: `postern receipts` reads the files and
/// its index, this decides.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fetch/pec_receipt.hpp"

namespace postern::admin {

/// The forwarder's audit line of one submission.
struct submission {
  std::string message_id;  ///< as in the header, with <>
  std::string mailbox;
  std::vector<std::string> recipients;
  std::int64_t time = 0;   ///< unix seconds
  std::string outcome;     ///< "relayed", "deferred" or "rejected"
  std::string reply;       ///< the provider's final reply (its queue id when relayed)
  bool uncertain = false;  ///< sent whole, the provider's answer to its end never came
};

/// One receipt of fetch's audit that names a submission (X-Riferimento-Message-ID).
struct receipt {
  fetch::pec_kind kind = fetch::pec_kind::not_pec;
  std::string ref_message_id;
  std::string recipient;    ///< daticert's consegna: whom a delivery receipt is about
  std::int64_t time = 0;    ///< when fetch recorded it, unix seconds
  std::string provider_id;  ///< daticert's identificativo
  std::string error;        ///< daticert's errore / errore-esteso, "" when none
  std::string mailbox;      ///< the mailbox fetch found it in
};

enum class recipient_state { pending, delivered, failed };
const char* to_string(recipient_state s);

struct recipient_report {
  std::string address;
  recipient_state state = recipient_state::pending;
  std::int64_t time = 0;  ///< of the receipt that decided it
  std::string reason;     ///< why it failed, or a warning (preavviso) while pending
};

enum class message_status { delivered, partial, failed, pending, overdue, uncertain };
const char* to_string(message_status s);

struct message_report {
  submission sent;
  std::optional<std::int64_t> accepted_at;  ///< the accettazione's time
  std::string provider_id;
  std::string not_accepted;  ///< why the provider refused it ("" unless it did)
  std::vector<recipient_report> recipients;
  message_status status = message_status::pending;
  std::string why;  ///< for failed, overdue and uncertain: in words
};

/// How long a message may wait for its receipts before it is overdue.
struct receipt_policy {
  std::int64_t accept_within = 30 * 60;        ///< the accettazione after submission
  std::int64_t deliver_within = 24 * 60 * 60;  ///< every delivery receipt after acceptance
};

/// The status of `sent` given every receipt that names its Message-ID, at time `now`.
message_report assess(const submission& sent, const std::vector<receipt>& receipts,
                      std::int64_t now, const receipt_policy& policy = {});

/// Of several submission lines for one Message-ID (a deferral, then the client's retry), the
/// one that counts: the last relayed, else the last uncertain, else the last one. `lines` is
/// not empty.
const submission& submission_that_counts(const std::vector<submission>& lines);

}  // namespace postern::admin
