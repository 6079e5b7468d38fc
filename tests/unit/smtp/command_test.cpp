#include <catch2/catch.hpp>

#include "forwarder/smtp/command.hpp"

using namespace postern::smtp;

TEST_CASE("parse_command splits verb and argument") {
  auto c = parse_command("mail FROM:<a@b.it> SIZE=10");
  REQUIRE(c);
  CHECK(c->verb == "MAIL");
  CHECK(c->arg == "FROM:<a@b.it> SIZE=10");
  CHECK(parse_command("QUIT")->arg.empty());
  CHECK_FALSE(parse_command(""));
  CHECK_FALSE(parse_command("MA1L x"));
  CHECK_FALSE(parse_command(std::string("NOOP\0x", 6)));
}

TEST_CASE("parse_mail_path reads address and ESMTP parameters") {
  std::string error;
  auto p = parse_mail_path("FROM:<ufficio@pec.example.it> SIZE=1234 body=8bitmime RET=HDRS", "FROM",
                           &error);
  REQUIRE(p);
  CHECK(p->address == "ufficio@pec.example.it");
  REQUIRE(p->params.size() == 3);
  CHECK(p->param("BODY")->value == "8bitmime");
  CHECK(p->to_wire({"SIZE", "BODY"}) == "<ufficio@pec.example.it> SIZE=1234 BODY=8bitmime");
  CHECK(p->to_wire({}) == "<ufficio@pec.example.it>");
}

TEST_CASE(
    "parse_mail_path accepts the null sender, a space after the colon, quoted local "
    "parts and source routes") {
  std::string error;
  CHECK(parse_mail_path("FROM:<>", "FROM", &error)->address.empty());
  CHECK(parse_mail_path("FROM: <a@b>", "FROM", &error)->address == "a@b");
  CHECK(parse_mail_path("TO:<\"x >y\"@b>", "TO", &error)->address == "\"x >y\"@b");
  CHECK(parse_mail_path("TO:<@relay.example:u@b>", "TO", &error)->address == "u@b");
}

TEST_CASE("parse_mail_path explains what is wrong") {
  std::string error;
  CHECK_FALSE(parse_mail_path("FROM:a@b", "FROM", &error));
  CHECK(error == "the address must be in angle brackets, e.g. <user@example.com>");
  CHECK_FALSE(parse_mail_path("TO:<>", "TO", &error));
  CHECK(error == "empty recipient address");
  CHECK_FALSE(parse_mail_path("<a@b>", "FROM", &error));
  CHECK(error == "syntax: MAIL FROM:<address>");
  CHECK_FALSE(parse_mail_path("TO:<a@b>X=1", "TO", &error));
  CHECK_FALSE(parse_mail_path("TO:<a b@c>", "TO", &error));
  CHECK(error == "malformed address");
}
