// The SMTP client's dialogue, step by step, without a socket: each test plays the server's
// replies into the machine and checks what it asks to send, read, or how it ends.
#include <catch2/catch.hpp>

#include "forwarder/smtp/client_machine.hpp"

using namespace postern;
using namespace postern::smtp;
using kind = client_machine::action::kind;
using state = client_machine::state;

namespace {

reply parse(std::initializer_list<const char*> lines) {
  reply_parser p;
  for (const char* l : lines) p.feed(l);
  return p.take();
}

reply r(int code, const char* text = "x") { return make_reply(code, "", text); }

client_machine::settings plain(std::string login = "") {
  client_machine::settings s;
  s.helo_name = "client.example";
  s.login = std::move(login);
  s.server = "mx.example:25";
  return s;
}

const reply ehlo_plain = parse({"250-mx.example", "250-AUTH PLAIN LOGIN", "250 8BITMIME"});
const reply ehlo_pipelining = parse({"250-mx.example", "250 PIPELINING"});

/// Opens a session on `m` up to the EHLO's reply (not fed yet).
client_machine::action to_ehlo(client_machine& m) {
  auto a = m.open();
  REQUIRE(a.what == kind::read);
  REQUIRE(m.current() == state::greeting);
  a = m.on_reply(r(220, "mx ready"));
  REQUIRE(a.what == kind::send);
  REQUIRE(a.bytes == "EHLO client.example\r\n");
  return a;
}

}  // namespace

TEST_CASE("client machine: greeting, EHLO, ready") {
  client_machine m(plain());
  to_ehlo(m);
  auto a = m.on_reply(ehlo_plain);
  CHECK(a.what == kind::done);
  CHECK(a.result.ok());
  CHECK(m.current() == state::ready);
  CHECK(m.capabilities().eightbitmime);
  CHECK(std::string(to_string(m.current())) == "ready");
}

TEST_CASE("client machine: LMTP says LHLO") {
  auto s = plain();
  s.lmtp = true;
  client_machine m(s);
  m.open();
  CHECK(m.on_reply(r(220)).bytes == "LHLO client.example\r\n");
}

TEST_CASE("client machine: every class of greeting and EHLO reply") {
  for (int code : {421, 450, 554}) {
    client_machine m(plain());
    m.open();
    auto a = m.on_reply(r(code));
    CHECK(a.what == kind::done);
    CHECK(a.result.kind ==
          (code < 500 ? failure_kind::rejected_temporary : failure_kind::rejected_permanent));
    CHECK(a.result.server.code == code);
    CHECK(a.result.detail == "greeting refused");
  }
  for (int code : {421, 502}) {
    client_machine m(plain());
    to_ehlo(m);
    auto a = m.on_reply(r(code));
    CHECK(a.what == kind::done);
    CHECK_FALSE(a.result.ok());
    CHECK(a.result.detail == "EHLO refused");
  }
}

TEST_CASE("client machine: implicit TLS comes before the greeting") {
  auto s = plain();
  s.implicit_tls = true;
  client_machine m(s);
  auto a = m.open();
  CHECK(a.what == kind::start_tls);
  CHECK(m.current() == state::tls_first);
  a = m.on_tls({});
  CHECK(a.what == kind::read);
  CHECK(m.current() == state::greeting);

  client_machine failing(s);
  failing.open();
  a = failing.on_tls({failure_kind::tls, {}, "certificate verify failed"});
  CHECK(a.what == kind::done);
  CHECK(a.close);
  CHECK(a.result.kind == failure_kind::tls);
  CHECK(failing.broken());
}

namespace {

/// Opens a STARTTLS session on `m` and plays the dialogue's lines up to STARTTLS's reply.
client_machine::action to_starttls(client_machine& m) {
  auto a = m.open();
  REQUIRE(a.what == kind::read);
  REQUIRE(a.line);
  REQUIRE(m.current() == state::preamble);
  CHECK(m.on_line("220-mx ready", false).what == kind::read);
  a = m.on_line("220 more", false);
  REQUIRE(a.bytes == "EHLO client.example\r\n");
  REQUIRE(a.line);
  CHECK(m.on_line("250-mx.example", false).what == kind::read);
  CHECK(m.on_line("250-PIPELINING", false).what == kind::read);
  a = m.on_line("250 STARTTLS", false);
  REQUIRE(a.bytes == "STARTTLS\r\n");
  return a;
}

}  // namespace

TEST_CASE("client machine: STARTTLS by the one dialogue, then EHLO with fresh capabilities") {
  auto s = plain();
  s.starttls = true;
  client_machine m(s);
  to_starttls(m);
  auto a = m.on_line("220 go ahead", false);
  CHECK(a.what == kind::start_tls);
  CHECK(m.current() == state::tls);
  CHECK_FALSE(m.capabilities().pipelining);  // nothing said in cleartext is kept
  a = m.on_tls({});
  CHECK(a.bytes == "EHLO client.example\r\n");
  CHECK_FALSE(a.line);
  a = m.on_reply(ehlo_pipelining);
  CHECK(a.what == kind::done);
  CHECK(a.result.ok());
  CHECK(m.capabilities().pipelining);
}

TEST_CASE("client machine: LMTP with STARTTLS says LHLO in the dialogue too") {
  auto s = plain();
  s.starttls = true;
  s.lmtp = true;
  client_machine m(s);
  m.open();
  CHECK(m.on_line("220 lmtp ready", false).bytes == "LHLO client.example\r\n");
}

TEST_CASE("client machine: a refused greeting or EHLO before STARTTLS is classified by its code") {
  auto s = plain();
  s.starttls = true;
  for (int code : {421, 554}) {
    client_machine m(s);
    m.open();
    auto a = m.on_line(std::to_string(code) + " go away", false);
    CHECK(a.what == kind::done);
    CHECK(a.result.kind ==
          (code < 500 ? failure_kind::rejected_temporary : failure_kind::rejected_permanent));
    CHECK(a.result.server.code == code);
    CHECK(a.result.server.text() == "go away");
    CHECK(a.result.detail == "SMTP server refused the session");
  }
  client_machine m(s);
  m.open();
  m.on_line("220 hi", false);
  auto a = m.on_line("502 no EHLO here", false);
  CHECK(a.result.kind == failure_kind::rejected_permanent);
  CHECK(a.result.detail == "SMTP server refused EHLO");
  client_machine junk(s);
  junk.open();
  a = junk.on_line("HTTP/1.1 400 Bad Request", false);
  CHECK(a.close);
  CHECK(a.result.kind == failure_kind::protocol);
  CHECK(a.result.detail == "malformed SMTP reply: server said \"HTTP/1.1 400 Bad Request\"");
}

TEST_CASE("client machine: no STARTTLS offered is a failure, never cleartext") {
  auto s = plain("user");
  s.starttls = true;
  client_machine m(s);
  m.open();
  m.on_line("220 hi", false);
  auto a = m.on_line("250 AUTH PLAIN", false);
  CHECK(a.what == kind::done);
  CHECK(a.close);
  CHECK(a.result.kind == failure_kind::tls);
  CHECK(a.result.detail ==
        "mx.example:25: SMTP server does not offer STARTTLS; refusing to continue in cleartext");
}

TEST_CASE("client machine: STARTTLS refused, and bytes injected after its 220") {
  auto s = plain();
  s.starttls = true;
  for (int code : {454, 502}) {
    client_machine m(s);
    to_starttls(m);
    auto a = m.on_line(std::to_string(code) + " not now", false);
    CHECK(a.what == kind::done);
    CHECK(a.result.kind == failure_kind::tls);
    CHECK(a.result.server.code == code);
    CHECK(a.result.detail == "SMTP server refused STARTTLS");
  }
  client_machine m(s);
  to_starttls(m);
  auto a = m.on_line("220 go ahead", true);  // "220 go ahead\r\n250 injected" in one read
  CHECK(a.what == kind::done);
  CHECK(a.close);
  CHECK(a.result.kind == failure_kind::protocol);
  CHECK(a.result.detail ==
        "server sent data after its STARTTLS reply (possible injection, CVE-2011-0411)");
  CHECK(m.broken());
  CHECK(m.on_line("250 late", false).result.kind == failure_kind::protocol);
}

TEST_CASE("client machine: AUTH PLAIN sends one redacted line") {
  client_machine m(plain("user"));
  to_ehlo(m);
  auto a = m.on_reply(ehlo_plain);
  CHECK(a.what == kind::password);
  CHECK(m.auth_used() == "PLAIN");
  a = m.on_password(conf::secret("pw"), "");
  CHECK(a.what == kind::send);
  CHECK(a.sensitive);
  CHECK(a.bytes == "AUTH PLAIN " + base64_encode(std::string("\0user\0pw", 8)) + "\r\n");
  a = m.on_reply(r(235, "2.7.0 ok"));
  CHECK(a.what == kind::done);
  CHECK(a.result.ok());
  CHECK(m.current() == state::ready);
}

TEST_CASE("client machine: AUTH LOGIN answers two challenges") {
  client_machine m(plain("user"));
  to_ehlo(m);
  m.on_reply(parse({"250-mx", "250 AUTH LOGIN"}));
  auto a = m.on_password(conf::secret("pw"), "");
  CHECK(a.bytes == "AUTH LOGIN\r\n");
  CHECK_FALSE(a.sensitive);
  a = m.on_reply(r(334, "VXNlcm5hbWU6"));
  CHECK(a.bytes == base64_encode("user") + "\r\n");
  CHECK(a.sensitive);
  a = m.on_reply(r(334, "UGFzc3dvcmQ6"));
  CHECK(a.bytes == base64_encode("pw") + "\r\n");
  CHECK(a.sensitive);
  a = m.on_reply(r(235));
  CHECK(a.result.ok());
}

TEST_CASE("client machine: AUTH CRAM-MD5 answers the challenge, refuses a malformed one") {
  client_machine m(plain("tim"));
  to_ehlo(m);
  m.on_reply(parse({"250-mx", "250 AUTH CRAM-MD5"}));
  auto a = m.on_password(conf::secret("tanstaaftanstaaf"), "");
  CHECK(a.bytes == "AUTH CRAM-MD5\r\n");
  // RFC 2195 §2's example.
  a = m.on_reply(r(334, "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"));
  CHECK(a.bytes == "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n");
  CHECK(a.sensitive);
  CHECK(m.on_reply(r(235)).result.ok());

  client_machine bad(plain("tim"));
  to_ehlo(bad);
  bad.on_reply(parse({"250-mx", "250 AUTH CRAM-MD5"}));
  bad.on_password(conf::secret("x"), "");
  a = bad.on_reply(r(334, "***"));
  CHECK(a.what == kind::done);
  CHECK(a.result.kind == failure_kind::protocol);
  CHECK(a.result.detail == "malformed CRAM-MD5 challenge");
}

TEST_CASE("client machine: AUTH refusals are classified") {
  struct row {
    int code;
    failure_kind expected;
  };
  for (row t :
       {row{535, failure_kind::auth}, row{534, failure_kind::auth},
        row{454, failure_kind::rejected_temporary}, row{421, failure_kind::rejected_temporary}}) {
    client_machine m(plain("user"));
    to_ehlo(m);
    m.on_reply(ehlo_plain);
    m.on_password(conf::secret("pw"), "");
    auto a = m.on_reply(r(t.code));
    CHECK(a.what == kind::done);
    CHECK(a.result.kind == t.expected);
    CHECK(a.result.server.code == t.code);
    CHECK(a.result.detail == "AUTH PLAIN as user refused");
  }
}

TEST_CASE("client machine: an unexpected AUTH challenge is cancelled with *") {
  client_machine m(plain("user"));
  to_ehlo(m);
  m.on_reply(ehlo_plain);
  m.on_password(conf::secret("pw"), "");
  auto a = m.on_reply(r(334, ""));
  CHECK(a.bytes == "*\r\n");
  a = m.on_reply(r(501, "cancelled"));
  CHECK(a.what == kind::done);
  CHECK(a.close);
  CHECK(a.result.kind == failure_kind::protocol);
  CHECK(a.result.detail == "unexpected AUTH challenge");
}

TEST_CASE("client machine: no mechanism, no password") {
  client_machine none(plain("user"));
  to_ehlo(none);
  auto a = none.on_reply(parse({"250-mx", "250 8BITMIME"}));
  CHECK(a.what == kind::done);
  CHECK(a.result.kind == failure_kind::auth);
  CHECK(a.result.detail == "the server offers no AUTH (login needs it)");

  client_machine odd(plain("user"));
  to_ehlo(odd);
  a = odd.on_reply(parse({"250-mx", "250 AUTH GSSAPI"}));
  CHECK(a.result.detail == "no supported AUTH mechanism offered");

  client_machine nopw(plain("user"));
  to_ehlo(nopw);
  nopw.on_reply(ehlo_plain);
  a = nopw.on_password(std::nullopt, "password_file /x: not found");
  CHECK(a.what == kind::done);
  CHECK(a.close);
  CHECK(a.result.kind == failure_kind::credentials);
  CHECK(a.result.detail == "password_file /x: not found");
}

namespace {
client_machine ready(const reply& ehlo = ehlo_plain) {
  client_machine m(plain());
  to_ehlo(m);
  REQUIRE(m.on_reply(ehlo).result.ok());
  return m;
}
}  // namespace

TEST_CASE("client machine: MAIL, RCPT, DATA one at a time, each reply class") {
  for (int code : {250, 451, 550}) {
    auto m = ready();
    auto a = m.mail("<a@example>");
    CHECK(a.bytes == "MAIL FROM:<a@example>\r\n");
    CHECK(m.in_transaction());
    a = m.on_reply(r(code));
    CHECK(a.what == kind::done);
    CHECK(a.result.kind == classify(r(code)));
    a = m.rcpt("<b@example>");
    CHECK(a.bytes == "RCPT TO:<b@example>\r\n");
    CHECK(m.on_reply(r(code)).result.kind == classify(r(code)));
  }
  auto m = ready();
  m.mail("<a@example>");
  m.on_reply(r(250));
  auto a = m.data();
  CHECK(a.bytes == "DATA\r\n");
  a = m.on_reply(r(354));
  CHECK(a.result.ok());
  CHECK(m.current() == state::body);
  a = m.end_data();
  CHECK(a.what == kind::read);
  CHECK(a.wait == reply_wait::final);
  a = m.on_reply(r(250, "queued"));
  CHECK(a.result.ok());
  CHECK_FALSE(m.in_transaction());
}

TEST_CASE("client machine: DATA answered other than 354") {
  auto m = ready();
  m.mail("<a@example>");
  m.on_reply(r(250));
  m.data();
  auto a = m.on_reply(r(250));
  CHECK(a.result.kind == failure_kind::protocol);
  CHECK(a.result.detail == "DATA answered 250 instead of 354");
  m.data();
  CHECK(m.on_reply(r(554)).result.kind == failure_kind::rejected_permanent);
}

TEST_CASE("client machine: envelope without PIPELINING goes step by step and stops early") {
  auto m = ready();
  auto a = m.envelope("<a@x>", "<b@y>");
  CHECK(a.bytes == "MAIL FROM:<a@x>\r\n");
  a = m.on_reply(r(250));
  CHECK(a.bytes == "RCPT TO:<b@y>\r\n");
  a = m.on_reply(r(250));
  CHECK(a.bytes == "DATA\r\n");
  a = m.on_reply(r(354));
  CHECK(a.result.ok());

  auto refused = ready();
  refused.envelope("<a@x>", "<b@y>");
  refused.on_reply(r(250));
  a = refused.on_reply(r(550, "no such user"));
  CHECK(a.what == kind::done);  // no DATA after a refused RCPT
  CHECK(a.result.server.code == 550);
}

TEST_CASE("client machine: pipelined envelope matches replies in order") {
  auto m = ready(ehlo_pipelining);
  auto a = m.envelope("<a@x>", "<b@y>");
  CHECK(a.what == kind::send);
  CHECK(a.bytes == "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
  CHECK(m.on_reply(r(250)).what == kind::read);
  CHECK(m.on_reply(r(250)).what == kind::read);
  a = m.on_reply(r(354));
  CHECK(a.what == kind::done);
  CHECK(a.result.ok());
  CHECK(m.current() == state::body);
}

TEST_CASE("client machine: pipelined envelope returns the first refusal") {
  struct row {
    int mail, rcpt, data, expected;
  };
  for (row t : {row{550, 503, 503, 550}, row{250, 550, 554, 550}, row{250, 450, 503, 450},
                row{451, 250, 503, 451}}) {
    auto m = ready(ehlo_pipelining);
    m.envelope("<a@x>", "<b@y>");
    m.on_reply(r(t.mail));
    m.on_reply(r(t.rcpt));
    auto a = m.on_reply(r(t.data));
    CHECK(a.what == kind::done);
    CHECK(a.result.server.code == t.expected);
    CHECK(m.current() == state::ready);
  }
}

TEST_CASE("client machine: a 354 after a refused RCPT is ended with an empty message") {
  auto m = ready(ehlo_pipelining);
  m.envelope("<a@x>", "<b@y>");
  m.on_reply(r(250));
  m.on_reply(r(550, "no such user"));
  auto a = m.on_reply(r(354));  // RFC 2920 §3.1 says it must not; some do
  CHECK(a.what == kind::send);
  CHECK(a.bytes == ".\r\n");
  a = m.on_reply(r(554, "no recipients"));
  CHECK(a.what == kind::done);
  CHECK(a.result.server.code == 550);  // the refusal that matters, not the empty message's
}

TEST_CASE("client machine: RSET, QUIT, and a reply nobody asked for") {
  auto m = ready();
  m.mail("<a@x>");
  m.on_reply(r(250));
  auto a = m.reset();
  CHECK(a.bytes == "RSET\r\n");
  CHECK(m.in_transaction());
  m.on_reply(r(250));
  CHECK_FALSE(m.in_transaction());
  a = m.quit();
  CHECK(a.bytes == "QUIT\r\n");
  CHECK(a.wait == reply_wait::quit);
  m.on_reply(r(221));
  CHECK(m.broken());

  auto idle = ready();
  a = idle.on_reply(r(250));
  CHECK(a.what == kind::done);
  CHECK(a.close);
  CHECK(a.result.kind == failure_kind::protocol);
}

TEST_CASE("client machine: an I/O failure at any step breaks the session") {
  auto m = ready();
  m.mail("<a@x>");
  auto a = m.on_io_failure({failure_kind::timeout, {}, "waiting for a reply: timed out"});
  CHECK(a.what == kind::done);
  CHECK(a.close);
  CHECK(a.result.kind == failure_kind::timeout);
  CHECK(m.broken());
  CHECK_FALSE(m.in_transaction());
}

TEST_CASE("client machine: a session refused while opening ends; nothing is sent on it after") {
  for (bool starttls : {false, true}) {
    auto s = plain("user");
    s.starttls = starttls;
    client_machine m(s);
    auto a = m.open();
    a = starttls ? m.on_line("421 too busy", false) : m.on_reply(r(421, "too busy"));
    CHECK(a.what == kind::done);
    CHECK(a.close);
    CHECK(a.result.kind == failure_kind::rejected_temporary);
    CHECK(m.broken());
    a = m.envelope("<a@x>", "<b@y>");
    CHECK(a.what == kind::done);
    CHECK(a.bytes.empty());
    CHECK(a.result.kind == failure_kind::protocol);
    CHECK(a.result.detail == "MAIL while the session is broken, not ready");
  }
  client_machine m(plain());
  m.open();
  CHECK(m.end_data().result.detail ==
        "the end of the message while the session is greeting, not ready");
}
