#include <catch2/catch.hpp>

#include "forwarder/smtp/message_header.hpp"

using namespace postern::smtp;

TEST_CASE("header_block keeps every byte of untouched fields, folding included") {
  const std::string text =
      "Received: from a\r\n\tby b; Mon, 1 Jan 2024\r\nFrom: \"Ufficio\" <u@pec.example.it>\r\n"
      "Subject: =?utf-8?q?caff=C3=A8?=\r\n  continued\r\n";
  header_block h = header_block::parse(text);
  CHECK(h.serialize() == text);
  CHECK(h.fields().size() == 3);
  CHECK(h.find("subject")->value() == "=?utf-8?q?caff=C3=A8?=  continued");
  CHECK(h.values("FROM") == std::vector<std::string>{"\"Ufficio\" <u@pec.example.it>"});
}

TEST_CASE("header_block edits: remove every instance, add with the block's line ending") {
  header_block h = header_block::parse(
      "A: 1\nDisposition-Notification-To: x@y\nB: 2\n"
      "disposition-notification-to: z@y\n");
  CHECK(h.remove("Disposition-Notification-To") == 2);
  h.add("Message-ID", "<1@x>");
  CHECK(h.serialize() == "A: 1\nB: 2\nMessage-ID: <1@x>\n");
}

TEST_CASE("header_end finds the empty line with CRLF or LF endings") {
  CHECK(header_end("A: 1\r\nB: 2\r\n\r\nbody") == 14);
  CHECK(header_end("A: 1\n\nbody") == 6);
  CHECK(header_end("\r\nbody only") == 2);
  CHECK_FALSE(header_end("A: 1\r\nB: 2\r\n"));
}

TEST_CASE("parse_address_list understands display names, comments, quotes and groups") {
  CHECK(parse_address_list("a@x.it") == std::vector<std::string>{"a@x.it"});
  CHECK(parse_address_list("\"Rossi, Mario\" <m.rossi@pec.it>, b@x.it (Bianchi)") ==
        std::vector<std::string>{"m.rossi@pec.it", "b@x.it"});
  CHECK(parse_address_list("Ufficio (sede, legale) <u@pec.it>") ==
        std::vector<std::string>{"u@pec.it"});
  CHECK(parse_address_list("undisclosed-recipients:;").empty());
  CHECK(parse_address_list("team: a@x.it, b@x.it;, c@x.it") ==
        std::vector<std::string>{"a@x.it", "b@x.it", "c@x.it"});
  CHECK(parse_address_list("\"quoted@not-an-address\" <real@x.it>") ==
        std::vector<std::string>{"real@x.it"});
}
