#include <catch2/catch.hpp>

#include "forwarder/smtp/reply.hpp"

using namespace postern::smtp;

TEST_CASE("reply_parser joins a multi-line reply and keeps its code") {
  reply_parser p;
  CHECK(p.feed("250-mx.example.com") == reply_parser::status::more);
  CHECK(p.feed("250-PIPELINING") == reply_parser::status::more);
  CHECK(p.feed("250 SIZE 1000") == reply_parser::status::done);
  reply r = p.take();
  CHECK(r.code == 250);
  CHECK(r.lines == std::vector<std::string>{"mx.example.com", "PIPELINING", "SIZE 1000"});
  CHECK(r.wire() == "250-mx.example.com\r\n250-PIPELINING\r\n250 SIZE 1000\r\n");
  CHECK(r.one_line() == "250 mx.example.com; PIPELINING; SIZE 1000");
}

TEST_CASE("reply_parser refuses what is not an SMTP reply") {
  reply_parser p;
  CHECK(p.feed("+OK POP3 ready") == reply_parser::status::malformed);
  CHECK(p.feed("25") == reply_parser::status::malformed);
  CHECK(p.feed("999 nope") == reply_parser::status::malformed);
  CHECK(p.feed("250-first") == reply_parser::status::more);
  CHECK(p.feed("550 other code") == reply_parser::status::malformed);
  CHECK(p.error() == "inconsistent multi-line reply");
  CHECK(p.feed("220") == reply_parser::status::done);
  CHECK(p.take().code == 220);
}

TEST_CASE("reply classes") {
  CHECK(make_reply(250, "2.0.0", "ok").positive());
  CHECK(make_reply(354, "", "go on").positive());
  CHECK(make_reply(451, "4.3.0", "later").transient());
  CHECK(make_reply(554, "5.7.1", "no").permanent());
}

TEST_CASE("make_reply puts the enhanced code on every line") {
  reply r = make_reply(550, "5.7.1", "first\nsecond");
  CHECK(r.wire() == "550-5.7.1 first\r\n550 5.7.1 second\r\n");
}

TEST_CASE("parse_ehlo reads the extensions a client needs") {
  reply_parser p;
  for (const char* line : {"250-smtp.example.it Hello", "250-PIPELINING", "250-SIZE 104857600",
                           "250-8BITMIME", "250-AUTH=PLAIN LOGIN", "250-AUTH PLAIN CRAM-MD5",
                           "250-ENHANCEDSTATUSCODES", "250-DSN", "250 STARTTLS"})
    p.feed(line);
  ehlo_capabilities caps = parse_ehlo(p.take());
  CHECK(caps.pipelining);
  CHECK(caps.size);
  CHECK(caps.max_size == 104857600);
  CHECK(caps.eightbitmime);
  CHECK_FALSE(caps.smtputf8);
  CHECK(caps.starttls);
  CHECK(caps.dsn);
  CHECK(caps.enhanced_status);
  CHECK(caps.auth == std::vector<std::string>{"PLAIN", "LOGIN", "CRAM-MD5"});
}
