// IMAP wire syntax: responses as servers write them (Dovecot's, Cyrus', Exchange's forms), the
// literal announcements the client must notice, and the arguments it writes.
#include <catch2/catch.hpp>

#include "fetch/imap_protocol.hpp"

using namespace postern::fetch;

namespace {
imap_response parse(std::string_view wire) {
  std::string error;
  auto r = parse_imap_response(wire, error);
  INFO(error);
  INFO(wire);
  REQUIRE(r);
  return *r;
}
}  // namespace

TEST_CASE("imap protocol: status responses and their codes") {
  auto r = parse("* OK [UIDVALIDITY 1700000001] UIDs valid");
  CHECK(r.what == imap_response::kind::untagged);
  CHECK(r.status == imap_status::ok);
  CHECK(r.code == "UIDVALIDITY");
  CHECK(r.code_arg == "1700000001");
  CHECK(r.text == "UIDs valid");
  r = parse("* OK [PERMANENTFLAGS (\\Answered \\Deleted \\Seen \\*)] Flags permitted.");
  CHECK(r.code == "PERMANENTFLAGS");
  CHECK(r.code_arg == "(\\Answered \\Deleted \\Seen \\*)");
  r = parse("p7 NO [AUTHENTICATIONFAILED] Authentication failed.");
  CHECK(r.what == imap_response::kind::tagged);
  CHECK(r.tag == "p7");
  CHECK(r.status == imap_status::no);
  CHECK(r.code == "AUTHENTICATIONFAILED");
  r = parse("p2 ok [read-write] Select completed");  // case-insensitive keywords
  CHECK(r.status == imap_status::ok);
  CHECK(r.code == "READ-WRITE");
  r = parse("* BYE Server shutting down");
  CHECK(r.status == imap_status::bye);
  CHECK(r.text == "Server shutting down");
  r = parse("+ idling");
  CHECK(r.what == imap_response::kind::continuation);
  CHECK(r.text == "idling");
  r = parse("+");
  CHECK(r.what == imap_response::kind::continuation);
}

TEST_CASE("imap protocol: data responses") {
  auto r = parse("* CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE AUTH=PLAIN auth=login");
  auto caps = parse_imap_capabilities(r.words);
  CHECK(caps.imap4rev1);
  CHECK(caps.sasl_ir);
  CHECK(caps.literal_plus);
  CHECK(caps.idle);
  CHECK_FALSE(caps.uidplus);
  CHECK(caps.has_auth("PLAIN"));
  CHECK(caps.has_auth("LOGIN"));
  r = parse("* 23 EXISTS");
  CHECK(r.number == 23);
  CHECK(r.name == "EXISTS");
  r = parse("* 4 EXPUNGE");
  CHECK(r.name == "EXPUNGE");
  r = parse("* ENABLED QRESYNC CONDSTORE");
  CHECK(r.words == std::vector<std::string>{"QRESYNC", "CONDSTORE"});
  r = parse("* VANISHED (EARLIER) 41,43:45");
  CHECK(r.earlier);
  CHECK(parse_uid_set(r.uid_set) == std::vector<std::uint32_t>{41, 43, 44, 45});
  r = parse("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)");
  CHECK(r.name == "FLAGS");
  r = parse("* SEARCH 2 84 882 (MODSEQ 917162500)");
  CHECK(r.words == std::vector<std::string>{"2", "84", "882"});
}

TEST_CASE("imap protocol: FETCH items, in any order, literals inline") {
  auto r = parse("* 1 FETCH (UID 17 RFC822.SIZE 4096 FLAGS (\\Seen $Label1))");
  CHECK(r.name == "FETCH");
  CHECK(r.number == 1);
  CHECK(r.uid == 17u);
  CHECK(r.size == 4096u);
  CHECK(r.flags == std::vector<std::string>{"\\Seen", "$Label1"});
  // Cyrus and Exchange may put UID after the body; MODSEQ with CONDSTORE.
  r = parse("* 2 FETCH (BODY[] {0}\r\n UID 18 MODSEQ (12345))");
  CHECK(r.body);
  CHECK(r.uid == 18u);
  CHECK(r.modseq == 12345u);
  r = parse("* 3 FETCH (UID 19 RFC822.SIZE 20 BODY[HEADER] {22}\r\nSubject: a\r\nX: {5}\r\n\r\n)");
  REQUIRE(r.header);
  CHECK(*r.header == "Subject: a\r\nX: {5}\r\n\r\n");
  r = parse("* 3 FETCH (UID 19 BODY[HEADER] \"quoted \\\"header\\\"\")");
  CHECK(r.header == std::optional<std::string>("quoted \"header\""));
  // Items the client did not ask for are skipped, whatever their shape.
  r = parse(
      "* 4 FETCH (ENVELOPE (\"date\" \"subj\" ((NIL NIL \"a\" \"b.c\")) NIL) UID 5 "
      "BODY[HEADER.FIELDS (MESSAGE-ID)] {4}\r\nab\r\n INTERNALDATE \"17-Jul-1996 02:44:25 "
      "-0700\")");
  CHECK(r.uid == 5u);
  CHECK_FALSE(r.body);
}

TEST_CASE("imap protocol: what is not IMAP is refused with a reason") {
  std::string error;
  for (std::string_view bad :
       {"", "garbage", "*", "* 1 FETCH UID 5", "* 1 FETCH (UID x)", "* 1 FETCH (UID 0)",
        "* 1 FETCH (BODY[] {10}\r\nshort)", "p1 MAYBE fine", "* OK [UNTERMINATED code",
        "* VANISHED (EARLIER) 1:", "* 1 FETCH (RFC822.SIZE 12"}) {
    INFO(bad);
    error.clear();
    CHECK_FALSE(parse_imap_response(bad, error));
    CHECK_FALSE(error.empty());
  }
}

TEST_CASE("imap protocol: literal announcements") {
  CHECK(trailing_literal("* 1 FETCH (UID 5 BODY[] {1234}") == 1234u);
  CHECK(trailing_literal("a LOGIN user {3+}") == 3u);
  CHECK(trailing_literal("* 1 FETCH (BINARY[] ~{7}") == 7u);
  CHECK_FALSE(trailing_literal("* OK {not a literal}"));
  CHECK_FALSE(trailing_literal("* OK done"));
  CHECK_FALSE(trailing_literal("{99999999999999999999}"));
  CHECK(announces_body("* 1 FETCH (UID 5 BODY[] {1234}"));
  CHECK(announces_body("* 1 fetch (uid 5 body[] {1234}"));
  CHECK(announces_body("* 9 FETCH (BODY[]<0> {10}"));
  CHECK_FALSE(announces_body("* 1 FETCH (UID 5 BODY[HEADER] {12}"));
  CHECK_FALSE(announces_body("p1 OK BODY[] {12}"));
}

TEST_CASE("imap protocol: arguments the client writes") {
  CHECK(imap_astring("INBOX") == std::optional<std::string>("INBOX"));
  CHECK(imap_astring("Posta inviata") == std::optional<std::string>("\"Posta inviata\""));
  CHECK(imap_astring("a\"b\\c") == std::optional<std::string>("\"a\\\"b\\\\c\""));
  CHECK(imap_astring("") == std::optional<std::string>("\"\""));
  CHECK_FALSE(imap_astring("line\r\nbreak"));
  CHECK_FALSE(imap_astring("caff\xc3\xa8"));
  // RFC 3501 §5.1.3's own example, and an Italian folder.
  CHECK(imap_folder_name(
            "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e") ==
        "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
  CHECK(imap_folder_name("Ricevute & consegne") == "Ricevute &- consegne");
  CHECK(imap_folder_name("Perch\xc3\xa9") == "Perch&AOk-");
  CHECK(imap_uid_set({1, 2, 3, 7, 9, 10}) == "1:3,7,9:10");
  CHECK(imap_uid_set({42}) == "42");
  CHECK(parse_uid_set("3:1") == std::vector<std::uint32_t>{1, 2, 3});
  CHECK_FALSE(parse_uid_set("1:4294967295", 1000));
  CHECK_FALSE(parse_uid_set("0"));
  CHECK_FALSE(parse_uid_set("1,,2"));
}
