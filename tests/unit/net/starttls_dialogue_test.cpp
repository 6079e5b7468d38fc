#include <catch2/catch.hpp>

#include "tunnel/net/starttls_dialogue.hpp"

using namespace postern::net;
using postern::conf::app_protocol;
using action = starttls_dialogue::action;

TEST_CASE("SMTP: greeting, EHLO, STARTTLS, then TLS") {
  starttls_dialogue d(app_protocol::smtp, "relay.example");
  CHECK(d.on_input("220-mx.example ESMTP\r\n").what == action::read_more);
  auto s = d.on_input("220 ready\r\n");
  CHECK(s.what == action::send);
  CHECK(s.data == "EHLO relay.example\r\n");
  CHECK(d.on_input("250-mx.example\r\n250-PIPELINING\r\n").what == action::read_more);
  s = d.on_input("250 STARTTLS\r\n");
  CHECK(s.what == action::send);
  CHECK(s.data == "STARTTLS\r\n");
  CHECK(d.on_input("220 2.0.0 go ahead\r\n").what == action::start_tls);
  CHECK(d.greeting_for_client() == "220-mx.example ESMTP\r\n220 ready\r\n");
}

TEST_CASE("SMTP: replies split across reads are reassembled") {
  starttls_dialogue d(app_protocol::smtp, "h");
  CHECK(d.on_input("22").what == action::read_more);
  CHECK(d.on_input("0 hi\r").what == action::read_more);
  CHECK(d.on_input("\n").what == action::send);
}

TEST_CASE("SMTP: a server without STARTTLS is refused") {
  starttls_dialogue d(app_protocol::smtp, "h");
  d.on_input("220 hi\r\n");
  auto s = d.on_input("250-mx\r\n250 SIZE 1000\r\n");
  CHECK(s.what == action::fail);
  CHECK(s.why == starttls_dialogue::failure::not_offered);
  CHECK(s.data == "SMTP server does not offer STARTTLS; refusing to continue in cleartext");
}

TEST_CASE("SMTP: bytes after the STARTTLS reply are an injection and refused") {
  starttls_dialogue d(app_protocol::smtp, "h");
  d.on_input("220 hi\r\n");
  d.on_input("250 STARTTLS\r\n");
  auto s = d.on_input("220 go\r\n250 injected\r\n");
  CHECK(s.what == action::fail);
  CHECK(s.why == starttls_dialogue::failure::injected);
  CHECK(s.data == "server sent data after its STARTTLS reply (possible injection, CVE-2011-0411)");
}

TEST_CASE("SMTP: a refusal carries the server's words") {
  starttls_dialogue d(app_protocol::smtp, "h");
  auto s = d.on_input("554 no service for you\r\n");
  CHECK(s.what == action::fail);
  CHECK(s.why == starttls_dialogue::failure::refused);
  CHECK(s.code == 554);
  CHECK(s.explain() == "SMTP server refused the session: server said \"554 no service for you\"");
}

TEST_CASE("POP3: STLS") {
  starttls_dialogue d(app_protocol::pop3, "h");
  auto s = d.on_input("+OK Dovecot ready.\r\n");
  CHECK(s.what == action::send);
  CHECK(s.data == "STLS\r\n");
  CHECK(d.on_input("+OK Begin TLS negotiation now.\r\n").what == action::start_tls);
  CHECK(d.greeting_for_client() == "+OK Dovecot ready.\r\n");
  starttls_dialogue refused(app_protocol::pop3, "h");
  refused.on_input("+OK hi\r\n");
  CHECK(refused.on_input("-ERR no TLS\r\n").what == action::fail);
}

TEST_CASE("IMAP: STARTTLS, untagged lines skipped, pre-TLS capabilities dropped") {
  starttls_dialogue d(app_protocol::imap, "h");
  auto s = d.on_input("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] Dovecot ready.\r\n");
  CHECK(s.what == action::send);
  CHECK(s.data == "pt1 STARTTLS\r\n");
  CHECK(d.on_input("* NOTE something\r\n").what == action::read_more);
  CHECK(d.on_input("pt1 OK Begin TLS negotiation now.\r\n").what == action::start_tls);
  CHECK(d.greeting_for_client() == "* OK Dovecot ready.\r\n");
}

TEST_CASE("lines and line counts are bounded") {
  starttls_dialogue d(app_protocol::smtp, "h");
  auto s = d.on_input(std::string(5000, 'x'));
  CHECK(s.what == action::fail);
  CHECK(s.data == "server sent a line longer than 4096 bytes");
  starttls_dialogue many(app_protocol::smtp, "h");
  std::string lines;
  for (int i = 0; i < 201; ++i) lines += "220-more\r\n";
  CHECK(many.on_input(lines).data == "server sent more than 200 lines before STARTTLS");
}

TEST_CASE("lines fed one by one, as the clients do, follow the same rules") {
  starttls_dialogue d(app_protocol::smtp, "h");
  CHECK(d.on_line("220 hi", false).data == "EHLO h\r\n");
  CHECK(d.on_line("250-mx", false).what == action::read_more);
  CHECK(d.on_line("250 STARTTLS", false).data == "STARTTLS\r\n");
  auto s = d.on_line("220 go", true);  // more bytes were in the same read
  CHECK(s.why == starttls_dialogue::failure::injected);
  CHECK(d.finished());
  CHECK(d.transcript() ==
        "S: 220 hi\nC: EHLO h\nS: 250-mx\nS: 250 STARTTLS\nC: STARTTLS\nS: 220 go\n");

  starttls_dialogue lmtp(app_protocol::lmtp, "h");
  CHECK(lmtp.on_line("220 lmtp", false).data == "LHLO h\r\n");
  auto r = lmtp.on_line("500 what", false);
  CHECK(r.why == starttls_dialogue::failure::refused);
  CHECK(r.data == "LMTP server refused LHLO");

  starttls_dialogue pop(app_protocol::pop3, "h");
  pop.on_line("+OK hi", false);
  auto e = pop.on_line("-ERR no", false);
  CHECK(e.why == starttls_dialogue::failure::starttls_refused);
  CHECK(e.server_line == "-ERR no");
  starttls_dialogue junk(app_protocol::pop3, "h");
  CHECK(junk.on_line("* OK imap", false).why == starttls_dialogue::failure::malformed);
}
