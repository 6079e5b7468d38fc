#include <catch2/catch.hpp>

#include "forwarder/smtp/sasl.hpp"
#include "forwarder/submission_rules.hpp"

using namespace postern;
using namespace postern::forwarder;

namespace {

conf::mailbox pec_box(const std::string& address) {
  conf::mailbox m;
  m.address = address;
  m.pec = true;
  m.limits = {100'000'000, true, 500, 0};
  return m;
}

smtp::header_block headers(const std::string& text) { return smtp::header_block::parse(text); }

}  // namespace

TEST_CASE("routing by envelope: the sender's mailbox, the smarthost, or a clear refusal") {
  conf::forwarder_config c;
  c.registry.mailboxes.push_back(pec_box("Ufficio@PEC.example.it"));
  route r = route_sender(c, "ufficio@pec.example.it");
  REQUIRE(r.mailbox);
  CHECK(r.mailbox->address == "Ufficio@PEC.example.it");
  r = route_sender(c, "other@example.it");
  CHECK_FALSE(r.mailbox);
  CHECK(r.refusal.code == 550);
  CHECK(r.refusal.text().find("has no mailbox") != std::string::npos);
  c.smarthost = conf::mailbox{};
  r = route_sender(c, "other@example.it");
  CHECK(r.smarthost);
}

TEST_CASE("routing by envelope+header needs both to name the same mailbox") {
  conf::forwarder_config c;
  c.registry.mailboxes.push_back(pec_box("a@pec.it"));
  c.registry.mailboxes.push_back(pec_box("b@pec.it"));
  route envelope = route_sender(c, "a@pec.it");
  CHECK(route_header(c, headers("From: A <a@pec.it>\r\n"), envelope).mailbox == envelope.mailbox);
  route mixed = route_header(c, headers("From: b@pec.it\r\n"), envelope);
  CHECK_FALSE(mixed.mailbox);
  CHECK(mixed.refusal.text().find("different mailboxes") != std::string::npos);
  CHECK(route_header(c, headers("Subject: none\r\n"), envelope).refusal.text() ==
        "5.6.0 the message has no From: header");
  c.match = conf::sender_match::header;
  CHECK(route_header(c, headers("From: b@pec.it\r\n"), {}).mailbox->address == "b@pec.it");
}

TEST_CASE("PEC: envelope sender, From: and mailbox must agree") {
  conf::mailbox m = pec_box("u@pec.it");
  auto plan =
      plan_pec_submission(m, "x@pec.it", {"r@y.it"}, headers("From: u@pec.it\r\nTo: r@y.it\r\n"),
                          conf::bcc_policy::reject);
  CHECK(plan.refusal.code == 550);
  CHECK(plan.refusal.text().find("envelope sender <x@pec.it> must be the mailbox") !=
        std::string::npos);
  plan = plan_pec_submission(m, "u@pec.it", {"r@y.it"},
                             headers("From: someone@else.it\r\nTo: r@y.it\r\n"),
                             conf::bcc_policy::reject);
  CHECK(plan.refusal.text().find("From: header must be exactly the mailbox <u@pec.it>, not "
                                 "<someone@else.it>") != std::string::npos);
}

TEST_CASE("PEC: recipients must equal To + Cc; Bcc is refused or split") {
  conf::mailbox m = pec_box("u@pec.it");
  auto h = headers("From: u@pec.it\r\nTo: A <a@x.it>\r\nCc: b@x.it\r\n");
  auto plan = plan_pec_submission(m, "u@pec.it", {"a@x.it", "B@x.it"}, h, conf::bcc_policy::reject);
  CHECK(plan.refusal.code == 0);
  CHECK(plan.recipients.size() == 2);
  plan = plan_pec_submission(m, "u@pec.it", {"a@x.it"}, h, conf::bcc_policy::reject);
  CHECK(plan.refusal.text().find("To/Cc name <b@x.it> but the envelope does not") !=
        std::string::npos);
  plan = plan_pec_submission(m, "u@pec.it", {"a@x.it", "b@x.it", "hidden@x.it"}, h,
                             conf::bcc_policy::reject);
  CHECK(plan.refusal.text().find("PEC does not allow Bcc: <hidden@x.it>") != std::string::npos);
  plan = plan_pec_submission(m, "u@pec.it", {"a@x.it", "b@x.it", "hidden@x.it"}, h,
                             conf::bcc_policy::split);
  CHECK(plan.refusal.code == 0);
  CHECK(plan.bcc == std::vector<std::string>{"hidden@x.it"});
  plan = plan_pec_submission(m, "u@pec.it", {"a@x.it"}, headers("From: u@pec.it\r\nCc: a@x.it\r\n"),
                             conf::bcc_policy::reject);
  CHECK(plan.refusal.text().find("needs a To: header") != std::string::npos);
}

TEST_CASE("provider size limit is shared among recipients when the provider says so") {
  conf::mailbox m = pec_box("u@pec.it");
  CHECK(check_size_limit(m, 50'000'000, 2).code == 0);
  smtp::reply r = check_size_limit(m, 50'000'000, 3);
  CHECK(r.code == 552);
  CHECK(r.text().find("x 3 recipients exceeds 100000000 bytes") != std::string::npos);
  m.limits.size_divided_by_recipients = false;
  CHECK(check_size_limit(m, 50'000'000, 3).code == 0);
  m.limits.max_message_size = 0;
  CHECK(check_size_limit(m, 1'000'000'000, 1000).code == 0);
}

TEST_CASE("PEC header edits strip receipt requests and Bcc, add Message-ID and receipt type") {
  smtp::header_block h = headers(
      "From: u@pec.it\r\nDisposition-Notification-To: u@pec.it\r\n"
      "Bcc: h@x.it\r\nX-TipoRicevuta: completa\r\n");
  std::string changes = apply_pec_edits(h, "sintetica", "relay.test");
  CHECK_FALSE(h.find("Disposition-Notification-To"));
  CHECK_FALSE(h.find("Bcc"));
  CHECK(h.values("X-TipoRicevuta") == std::vector<std::string>{"sintetica"});
  auto id = h.find("Message-ID")->value();
  CHECK(id.front() == '<');
  CHECK(id.ends_with("@relay.test>"));
  CHECK(changes ==
        "removed:Disposition-Notification-To,removed:Bcc,added:Message-ID,set:X-TipoRicevuta");
  smtp::header_block kept = headers("Message-ID: <mine@x>\r\n");
  CHECK(apply_pec_edits(kept, "", "relay.test").empty());
}

TEST_CASE("SASL responses") {
  conf::secret password("s3cret");
  CHECK(smtp::plain_response("user@pec.it", password).reveal() ==
        smtp::base64_encode(std::string("\0user@pec.it\0s3cret", 19)));
  // RFC 2195 §2 example.
  conf::secret tanstaaf("tanstaaftanstaaf");
  auto r = smtp::cram_md5_response("tim", tanstaaf,
                                   "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+");
  REQUIRE(r);
  CHECK(r->reveal() == "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
  CHECK(smtp::choose_mechanism({"LOGIN", "PLAIN"}) == smtp::auth_mechanism::plain);
  CHECK(smtp::choose_mechanism({"LOGIN", "CRAM-MD5"}) == smtp::auth_mechanism::cram_md5);
  CHECK_FALSE(smtp::choose_mechanism({"XOAUTH2"}));
}
