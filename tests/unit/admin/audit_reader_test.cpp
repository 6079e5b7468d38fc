#include <catch2/catch.hpp>

#include <unistd.h>

#include <fstream>

#include "cli/admin/audit_reader.hpp"
#include "cli/audit_log.hpp"

using namespace postern::admin;

namespace {

audit_fields parsed(std::string_view line) {
  std::string error;
  auto fields = parse_audit_line(line, error);
  INFO(error);
  REQUIRE(fields);
  return *fields;
}

std::string failure(std::string_view line) {
  std::string error;
  CHECK_FALSE(parse_audit_line(line, error));
  return error;
}

}  // namespace

TEST_CASE("audit lines: what the forwarder's writer writes reads back field by field") {
  char name[] = "/tmp/postern-audit-read-XXXXXX";
  const int fd = ::mkstemp(name);
  REQUIRE(fd >= 0);
  ::close(fd);
  {
    postern::cli::audit_log log;
    std::string error;
    REQUIRE(log.open(name, error));
    postern::cli::audit_record r;
    r.session = "s7";
    r.mailbox = "ufficio@pec.test";
    r.recipients = {"a@pec.test", "b@pec.test"};
    r.message_id = "<m1@office.test>";
    r.size = 1234;
    r.outcome = "deferred";
    r.reply = "451 4.4.2 \"timed out\"\tno answer: l'invio è incerto";
    r.uncertain = true;
    log.write(r);
  }
  std::ifstream in(name);
  std::string line;
  REQUIRE(std::getline(in, line));
  ::unlink(name);
  audit_fields f = parsed(line);
  CHECK(std::get<std::string>(f.at("reply")) ==
        "451 4.4.2 \"timed out\"\tno answer: l'invio è incerto");
  CHECK(std::get<std::int64_t>(f.at("size")) == 1234);
  std::string error;
  auto s = submission_of(f, error);
  REQUIRE(s);
  CHECK(s->message_id == "<m1@office.test>");
  CHECK(s->recipients == std::vector<std::string>{"a@pec.test", "b@pec.test"});
  CHECK(s->outcome == "deferred");
  CHECK(s->uncertain);
  CHECK(s->time > 1'700'000'000);
}

TEST_CASE("audit lines: escapes, \\u and surrogate pairs are decoded") {
  audit_fields f = parsed(R"( {"a":"\u00e8\n\/\\","b":"\ud83d\ude00","c":[],"d":false,"e":-5} )");
  CHECK(std::get<std::string>(f.at("a")) == "è\n/\\");
  CHECK(std::get<std::string>(f.at("b")) == "\xF0\x9F\x98\x80");
  CHECK(std::get<std::vector<std::string>>(f.at("c")).empty());
  CHECK(std::get<bool>(f.at("d")) == false);
  CHECK(std::get<std::int64_t>(f.at("e")) == -5);
  CHECK(parsed("{}").empty());
}

TEST_CASE("audit lines: a line that is not a flat object says where it went wrong") {
  CHECK(failure(R"({"a":"b")") == "column 9: expected , or }");
  CHECK(failure(R"({"a":"b"} x)") == "column 11: more after the object");
  CHECK(failure(R"({"a":{"b":1}})") == "column 6: expected a number");
  CHECK(failure(R"({"a":"\ud83d"})") == "column 13: a lone surrogate");
  CHECK(failure(R"({"a":"tr)") == "column 9: the string does not end");
  CHECK(failure(R"({"a":1.5})") == "column 7: expected a whole number");
  CHECK(failure("") == "column 1: expected {");
  CHECK(failure(R"({"a":["x",2]})") == "column 11: expected a string");
}

TEST_CASE("audit times are UTC timestamps to the millisecond") {
  CHECK(parse_audit_time("2026-12-02T15:29:00.123Z") == 1'796'225'340);
  CHECK(parse_audit_time("1970-01-01T00:00:00.000Z") == 0);
  CHECK_FALSE(parse_audit_time("2026-12-02 15:29:00.123Z"));
  CHECK_FALSE(parse_audit_time("2026-13-02T15:29:00.123Z"));
  CHECK_FALSE(parse_audit_time("2026-12-02T15:29:00Z"));
}

TEST_CASE("audit lines: what is a submission and what is a receipt") {
  std::string error;
  // A refusal before data has no Message-ID: no submission, and no error either.
  CHECK_FALSE(
      submission_of(parsed(R"({"time":"2026-12-02T15:29:00.123Z","message_id":""})"), error));
  CHECK(error.empty());
  CHECK_FALSE(submission_of(parsed(R"({"time":"2026-12-02T15:29:00.123Z","message_id":"<x>",
      "mailbox":"u@p","outcome":"relayed","reply":"250 ok"})"),
                            error));
  CHECK(error == "no \"recipients\" list");
  auto delivered =
      receipt_of(parsed(R"({"time":"2026-12-02T16:00:00.000Z","pec":"avvenuta-consegna",
        "ref_message_id":"<m1@office.test>","consegna":"a@pec.test","errore":"nessuno",
        "identificativo":"opec210.1"})"),
                 error);
  REQUIRE(delivered);
  CHECK(delivered->kind == postern::fetch::pec_kind::avvenuta_consegna);
  CHECK(delivered->recipient == "a@pec.test");
  CHECK(delivered->error.empty());  // "nessuno" is no error
  CHECK(delivered->provider_id == "opec210.1");
  auto failed = receipt_of(parsed(R"({"time":"2026-12-02T16:00:00.000Z","pec":"errore-consegna",
        "ref_message_id":"<m1@office.test>","errore":"no-dest","errore_esteso":"5.1.1 unknown"})"),
                           error);
  REQUIRE(failed);
  CHECK(failed->error == "5.1.1 unknown");
  // Envelopes of received mail, and receipts naming no message, are not receipts of ours.
  CHECK_FALSE(receipt_of(parsed(R"({"time":"2026-12-02T16:00:00.000Z","pec":"posta-certificata",
        "ref_message_id":"<other@x>"})"),
                         error));
  CHECK_FALSE(receipt_of(parsed(R"({"time":"2026-12-02T16:00:00.000Z","pec":"accettazione",
        "ref_message_id":""})"),
                         error));
}
