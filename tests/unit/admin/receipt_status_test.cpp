#include <catch2/catch.hpp>

#include "cli/admin/receipt_status.hpp"

using namespace postern::admin;
using postern::fetch::pec_kind;

namespace {

constexpr std::int64_t t0 = 1'800'000'000;  // the submission
constexpr std::int64_t minute = 60, hour = 3600;

submission sent(std::vector<std::string> to = {"a@pec.test", "b@pec.test"},
                std::string outcome = "relayed") {
  submission s;
  s.message_id = "<m1@office.test>";
  s.mailbox = "ufficio@pec.test";
  s.recipients = std::move(to);
  s.time = t0;
  s.outcome = std::move(outcome);
  s.reply = "250 2.0.0 Ok: queued as 4XyZ";
  return s;
}

receipt got(pec_kind kind, std::int64_t at, std::string recipient = {}, std::string error = {}) {
  receipt r;
  r.kind = kind;
  r.ref_message_id = "<m1@office.test>";
  r.recipient = std::move(recipient);
  r.time = at;
  r.provider_id = "opec210.20261201.1";
  r.error = std::move(error);
  return r;
}

}  // namespace

TEST_CASE("receipts: accepted and delivered to every recipient is delivered") {
  auto m = assess(sent(),
                  {got(pec_kind::accettazione, t0 + minute),
                   got(pec_kind::avvenuta_consegna, t0 + 2 * minute, "A@pec.test"),
                   got(pec_kind::avvenuta_consegna, t0 + 3 * minute, "b@pec.test")},
                  t0 + hour);
  CHECK(m.status == message_status::delivered);
  REQUIRE(m.accepted_at);
  CHECK(*m.accepted_at == t0 + minute);
  CHECK(m.provider_id == "opec210.20261201.1");
  REQUIRE(m.recipients.size() == 2);  // A@ matched a@ whatever the case
  CHECK(m.recipients[0].state == recipient_state::delivered);
  CHECK(m.recipients[0].time == t0 + 2 * minute);
}

TEST_CASE("receipts: one delivered, one failed is partial; none delivered is failed") {
  auto m = assess(
      sent(),
      {got(pec_kind::accettazione, t0 + minute),
       got(pec_kind::avvenuta_consegna, t0 + 2 * minute, "a@pec.test"),
       got(pec_kind::errore_consegna, t0 + 3 * minute, "b@pec.test", "5.1.1 mailbox unknown")},
      t0 + hour);
  CHECK(m.status == message_status::partial);
  CHECK(m.recipients[1].state == recipient_state::failed);
  CHECK(m.recipients[1].reason == "5.1.1 mailbox unknown");
  auto none = assess(sent({"b@pec.test"}),
                     {got(pec_kind::accettazione, t0 + minute),
                      got(pec_kind::errore_consegna, t0 + 2 * minute, "b@pec.test")},
                     t0 + hour);
  CHECK(none.status == message_status::failed);
  CHECK(none.recipients[0].reason == "errore-consegna");
}

TEST_CASE("receipts: not accepted, or a virus found, is failed with the provider's reason") {
  auto m = assess(sent(), {got(pec_kind::non_accettazione, t0 + minute, {}, "firma non valida")},
                  t0 + hour);
  CHECK(m.status == message_status::failed);
  CHECK(m.why == "not accepted by the provider: firma non valida");
  auto virus = assess(
      sent(),
      {got(pec_kind::accettazione, t0 + minute), got(pec_kind::rilevazione_virus, t0 + 2 * minute)},
      t0 + hour);
  CHECK(virus.status == message_status::failed);
  CHECK(virus.why == "not accepted by the provider: rilevazione-virus");
}

TEST_CASE("receipts: waiting is pending until the policy's limits, then overdue") {
  receipt_policy policy;
  CHECK(assess(sent(), {}, t0 + 29 * minute, policy).status == message_status::pending);
  auto late = assess(sent(), {}, t0 + 31 * minute, policy);
  CHECK(late.status == message_status::overdue);
  CHECK(late.why == "no accettazione within 30 min of submission");
  const std::vector<receipt> accepted = {
      got(pec_kind::accettazione, t0 + minute),
      got(pec_kind::avvenuta_consegna, t0 + 2 * minute, "a@pec.test")};
  CHECK(assess(sent(), accepted, t0 + 23 * hour, policy).status == message_status::pending);
  auto slow = assess(sent(), accepted, t0 + 25 * hour, policy);
  CHECK(slow.status == message_status::overdue);
  CHECK(slow.why == "1 recipient(s) without a delivery receipt 24 h after acceptance");
  policy.accept_within = 5 * minute;
  CHECK(assess(sent(), {}, t0 + 6 * minute, policy).status == message_status::overdue);
}

TEST_CASE("receipts: a warning leaves a recipient pending; a final word is not undone") {
  auto m = assess(sent({"a@pec.test"}),
                  {got(pec_kind::accettazione, t0 + minute),
                   got(pec_kind::preavviso_errore_consegna, t0 + 12 * hour, "a@pec.test")},
                  t0 + 13 * hour);
  CHECK(m.status == message_status::pending);
  CHECK(m.recipients[0].reason.starts_with("preavviso-errore-consegna"));
  // Receipts applied in time order whatever order the files gave them.
  auto done = assess(sent({"a@pec.test"}),
                     {got(pec_kind::preavviso_errore_consegna, t0 + 12 * hour, "a@pec.test"),
                      got(pec_kind::avvenuta_consegna, t0 + 2 * hour, "a@pec.test"),
                      got(pec_kind::accettazione, t0 + minute)},
                     t0 + 13 * hour);
  CHECK(done.status == message_status::delivered);
  CHECK(done.recipients[0].reason.empty());
}

TEST_CASE("receipts: the forwarder's own word when no receipt came") {
  auto refused = sent({"a@pec.test"}, "rejected");
  refused.reply = "550 5.7.1 sender not allowed";
  auto m = assess(refused, {}, t0 + minute);
  CHECK(m.status == message_status::failed);
  CHECK(m.why == "refused at submission: 550 5.7.1 sender not allowed");
  auto lost = sent({"a@pec.test"}, "deferred");
  lost.uncertain = true;
  CHECK(assess(lost, {}, t0 + 2 * hour).status == message_status::uncertain);
  // An uncertain submission that the provider did take is known by its receipts.
  CHECK(assess(lost,
               {got(pec_kind::accettazione, t0 + minute),
                got(pec_kind::avvenuta_consegna, t0 + 2 * minute, "a@pec.test")},
               t0 + hour)
            .status == message_status::delivered);
  auto deferred = sent({"a@pec.test"}, "deferred");
  deferred.reply = "451 4.3.0 provider busy";
  CHECK(assess(deferred, {}, t0 + minute).status == message_status::pending);
  auto stale = assess(deferred, {}, t0 + hour);
  CHECK(stale.status == message_status::overdue);
  CHECK(stale.why == "deferred (451 4.3.0 provider busy) and not sent again within 30 min");
}

TEST_CASE("receipts: a delivery receipt for an address the submission did not list is kept") {
  auto m = assess(sent({"a@pec.test"}),
                  {got(pec_kind::accettazione, t0 + minute),
                   got(pec_kind::avvenuta_consegna, t0 + 2 * minute, "a@pec.test"),
                   got(pec_kind::avvenuta_consegna, t0 + 2 * minute, "alias@pec.test")},
                  t0 + hour);
  REQUIRE(m.recipients.size() == 2);
  CHECK(m.recipients[1].address == "alias@pec.test");
  CHECK(m.status == message_status::delivered);
}

TEST_CASE("receipts: of several lines for one message, the relayed one counts") {
  auto first = sent({"a@pec.test"}, "deferred");
  auto lost = sent({"a@pec.test"}, "deferred");
  lost.uncertain = true;
  auto relayed = sent({"a@pec.test"}, "relayed");
  relayed.time = t0 + 10 * minute;
  std::vector<submission> lines = {first, relayed, lost};
  CHECK(submission_that_counts(lines).time == t0 + 10 * minute);
  std::vector<submission> unsure = {first, lost};
  CHECK(submission_that_counts(unsure).uncertain);
  std::vector<submission> tried = {first};
  CHECK(submission_that_counts(tried).outcome == "deferred");
}

TEST_CASE("receipts: a delivery receipt stands for the acceptance that was not seen") {
  auto m = assess(sent({"a@pec.test"}),
                  {got(pec_kind::avvenuta_consegna, t0 + 2 * minute, "a@pec.test")}, t0 + hour);
  CHECK(m.status == message_status::delivered);
  CHECK_FALSE(m.accepted_at);
  // Waiting for the others is then measured from the submission.
  auto late = assess(sent(), {got(pec_kind::avvenuta_consegna, t0 + 2 * minute, "a@pec.test")},
                     t0 + 25 * hour);
  CHECK(late.status == message_status::overdue);
}
