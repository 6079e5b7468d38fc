// The forwarder's SMTP server session, step by step without a socket: command lines in,
// replies and next steps out. Each rule that keeps it from being an open relay or a password
// oracle has a test here.
#include <catch2/catch.hpp>

#include "forwarder/session_machine.hpp"
#include "forwarder/smtp/sasl.hpp"

using namespace postern;
using namespace postern::forwarder;
using kind = session_machine::action::kind;
using state = session_machine::state;

namespace {

session_machine::settings allowed() {
  session_machine::settings s;
  s.hostname = "fw.example";
  s.max_message_size = 1000;
  s.peer_allowed = true;
  s.peer_address = "192.0.2.7:4000";
  s.peer_ip = "192.0.2.7";
  return s;
}

session_machine::settings outsider(bool tls = true) {
  auto s = allowed();
  s.peer_allowed = false;
  s.auth_available = true;
  s.tls_available = tls;
  return s;
}

int code(const session_machine::action& a, std::size_t i = 0) {
  return i < a.replies.size() ? a.replies[i].code : 0;
}

std::string text(const session_machine::action& a) {
  std::string out;
  for (const auto& r : a.replies) out += r.one_line() + "\n";
  return out;
}

/// Greets and says EHLO; returns the EHLO's reply.
session_machine::action hello(session_machine& m) {
  auto a = m.greet();
  REQUIRE(a.what == kind::read_command);
  REQUIRE(code(a) == 220);
  a = m.on_line("EHLO client.example", false);
  REQUIRE(code(a) == 250);
  return a;
}

/// MAIL and one RCPT accepted by the relay.
void envelope(session_machine& m) {
  auto a = m.on_line("MAIL FROM:<a@example>", false);
  REQUIRE(a.what == kind::relay_mail);
  REQUIRE(a.path->address == "a@example");
  m.on_relayed(smtp::make_reply(250, "2.1.0", "ok"), true, 0);
  a = m.on_line("RCPT TO:<b@example>", false);
  REQUIRE(a.what == kind::relay_rcpt);
  m.on_relayed(smtp::make_reply(250, "2.1.5", "ok"), true, 1);
}

}  // namespace

TEST_CASE("session machine: a whole submission") {
  session_machine m(allowed());
  auto a = hello(m);
  CHECK(a.reset_relay);
  CHECK(text(a).find("PIPELINING") != std::string::npos);
  CHECK(text(a).find("SIZE 1000") != std::string::npos);
  CHECK(text(a).find("STARTTLS") == std::string::npos);  // no certificate configured
  CHECK(text(a).find("AUTH") == std::string::npos);
  envelope(m);
  a = m.on_line("DATA", false);
  CHECK(a.what == kind::relay_data);
  CHECK(code(a) == 354);
  CHECK(m.current() == state::data);
  a = m.on_data_done(smtp::make_reply(250, "2.0.0", "queued"), "");
  CHECK(a.what == kind::read_command);
  CHECK(a.reset_relay);
  CHECK(code(a) == 250);
  CHECK(m.relayed() == 1);
  a = m.on_line("QUIT", false);
  CHECK(a.what == kind::close);
  CHECK(code(a) == 221);
  CHECK(m.reason() == "quit");
  CHECK(std::string(to_string(m.current())) == "closed");
}

TEST_CASE("session machine: never an open relay") {
  auto s = allowed();
  s.peer_allowed = false;
  session_machine nobody(s);  // outside allow, no AUTH configured
  auto a = nobody.greet();
  CHECK(a.what == kind::close);
  CHECK(code(a) == 554);
  CHECK(nobody.reason() == "not allowed");

  session_machine m(outsider());
  hello(m);
  a = m.on_line("MAIL FROM:<a@example>", false);
  CHECK(code(a) == 530);
  CHECK(a.replies[0].one_line() == "530 5.7.0 authentication required: STARTTLS, then AUTH");
}

TEST_CASE("session machine: command order") {
  session_machine m(allowed());
  m.greet();
  auto a = m.on_line("MAIL FROM:<a@example>", false);
  CHECK(code(a) == 503);  // EHLO first
  m.on_line("EHLO c", false);
  CHECK(code(m.on_line("RCPT TO:<b@example>", false)) == 503);  // MAIL first
  CHECK(code(m.on_line("DATA", false)) == 503);
  m.on_line("MAIL FROM:<a@example>", false);
  m.on_relayed(smtp::make_reply(250, "", "ok"), true, 0);
  a = m.on_line("DATA", false);
  CHECK(code(a) == 554);  // no valid recipients
  CHECK(code(m.on_line("MAIL FROM:<a@", false)) == 501);
  CHECK(code(m.on_line("HELO", false)) == 501);
  CHECK(code(m.on_line("BDAT 10", false)) == 502);
  CHECK(code(m.on_line("NOOP", false)) == 250);
  CHECK(code(m.on_line("VRFY x", false)) == 252);
  a = m.on_line("RSET", false);
  CHECK(a.reset_relay);
  CHECK(code(a) == 250);
}

TEST_CASE("session machine: ten errors end the session, after the tenth's own reply") {
  session_machine m(allowed());
  m.greet();
  session_machine::action a;
  for (int i = 0; i < session_machine::max_errors; ++i) a = m.on_line("XYZZY", false);
  CHECK(a.what == kind::close);
  REQUIRE(a.replies.size() == 2);
  CHECK(code(a, 0) == 502);
  CHECK(code(a, 1) == 421);
  CHECK(m.reason() == "too many errors");
}

TEST_CASE("session machine: reading ends: timeout, close, a line too long, a failed write") {
  session_machine m(allowed());
  m.greet();
  auto a = m.on_line_too_long();
  CHECK(a.what == kind::read_command);
  CHECK(a.replies[0].one_line() == "500 5.5.2 line too long (limit 2048)");
  a = m.on_timeout();
  CHECK(a.what == kind::close);
  CHECK(code(a) == 421);
  CHECK(m.reason() == "timeout");
  session_machine c(allowed());
  c.greet();
  CHECK(c.on_closed().replies.empty());
  CHECK(c.reason() == "client closed without QUIT");
  session_machine w(allowed());
  w.greet();
  CHECK(w.on_write_failed().what == kind::close);
  CHECK(w.reason() == "write failed");
}

TEST_CASE("session machine: STARTTLS, injection after it, and what TLS makes it forget") {
  auto s = outsider();
  session_machine m(s);
  auto a = hello(m);
  CHECK(text(a).find("STARTTLS") != std::string::npos);
  CHECK(text(a).find("AUTH") == std::string::npos);  // not in cleartext from afar
  a = m.on_line("AUTH PLAIN xyz", false);
  CHECK(a.replies[0].one_line() == "538 5.7.11 encryption required: STARTTLS first");
  a = m.on_line("STARTTLS", false);
  CHECK(a.what == kind::start_tls);
  CHECK(code(a) == 220);
  a = m.on_tls(true, "");
  CHECK(a.reset_relay);
  CHECK(m.tls());
  CHECK(m.helo().empty());                                        // RFC 3207 §4.2
  CHECK(code(m.on_line("MAIL FROM:<a@example>", false)) == 503);  // EHLO again first
  a = m.on_line("EHLO c", false);
  CHECK(text(a).find("STARTTLS") == std::string::npos);
  CHECK(text(a).find("AUTH PLAIN LOGIN") != std::string::npos);
  CHECK(m.on_line("STARTTLS", false).replies[0].code == 503);

  session_machine injected(s);
  hello(injected);
  a = injected.on_line("STARTTLS", true);  // "STARTTLS\r\nMAIL FROM:..." in one packet
  CHECK(a.what == kind::close);
  CHECK(code(a) == 554);
  CHECK(injected.reason() == "data after STARTTLS");

  session_machine failed(s);
  hello(failed);
  failed.on_line("STARTTLS", false);
  a = failed.on_tls(false, "no shared cipher");
  CHECK(a.what == kind::close);
  CHECK(failed.reason() == "TLS handshake failed: no shared cipher");

  session_machine none(allowed());
  hello(none);
  CHECK(none.on_line("STARTTLS", false).replies[0].code == 502);
}

namespace {
/// An outsider over TLS, ready for AUTH.
session_machine over_tls() {
  session_machine m(outsider());
  hello(m);
  m.on_line("STARTTLS", false);
  m.on_tls(true, "");
  m.on_line("EHLO c", false);
  return m;
}
}  // namespace

TEST_CASE("session machine: AUTH PLAIN with an initial response, then relaying") {
  auto m = over_tls();
  const std::string response = smtp::base64_encode(std::string("\0alice\0pw", 9));
  auto a = m.on_line("AUTH PLAIN " + response, false);
  CHECK(a.what == kind::check_lock);
  a = m.on_lock(0);
  CHECK(a.what == kind::verify);
  REQUIRE(a.credentials);
  CHECK(a.credentials->user == "alice");
  CHECK(a.credentials->password == "pw");
  a = m.on_verified(true, false);
  CHECK(code(a) == 235);
  CHECK(m.user() == "alice");
  CHECK(m.on_line("MAIL FROM:<a@example>", false).what == kind::relay_mail);
  CHECK(code(m.on_line("AUTH PLAIN x", false)) == 503);  // already authenticated
}

TEST_CASE("session machine: AUTH LOGIN asks twice; * cancels; a locked address is closed") {
  auto m = over_tls();
  m.on_line("AUTH LOGIN", false);
  auto a = m.on_lock(0);
  CHECK(a.what == kind::read_sasl);
  CHECK(a.replies[0].one_line() == "334 VXNlcm5hbWU6");
  a = m.on_sasl_line(smtp::base64_encode("bob"));
  CHECK(a.what == kind::read_sasl);
  CHECK(a.replies[0].one_line() == "334 UGFzc3dvcmQ6");
  a = m.on_sasl_line(smtp::base64_encode("secret"));
  CHECK(a.what == kind::verify);
  CHECK(a.credentials->user == "bob");

  auto c = over_tls();
  c.on_line("AUTH PLAIN", false);
  a = c.on_lock(0);
  CHECK(a.what == kind::read_sasl);
  a = c.on_sasl_line(std::string("*"));
  CHECK(a.what == kind::read_command);
  CHECK(code(a) == 501);

  auto gone = over_tls();
  gone.on_line("AUTH PLAIN", false);
  gone.on_lock(0);
  a = gone.on_sasl_line(std::nullopt);
  CHECK(a.what == kind::close);
  CHECK(gone.reason() == "client closed during AUTH");

  auto locked = over_tls();
  a = locked.on_line("AUTH CRAM-MD5", false);
  CHECK(a.what == kind::check_lock);  // a locked address gets nothing, whatever it asks
  a = locked.on_lock(600);
  CHECK(a.what == kind::close);
  CHECK(a.replies[0].one_line() ==
        "421 4.7.0 fw.example too many failed logins from 192.0.2.7; try again in 600s");

  auto odd = over_tls();
  odd.on_line("AUTH CRAM-MD5", false);
  CHECK(odd.on_lock(0).replies[0].code == 504);
}

TEST_CASE("session machine: three failed logins, or a lockout, end the session") {
  auto m = over_tls();
  const std::string bad = "AUTH PLAIN " + smtp::base64_encode(std::string("\0eve\0guess", 10));
  for (int i = 1; i <= session_machine::max_auth_failures; ++i) {
    m.on_line(bad, false);
    m.on_lock(0);
    auto a = m.on_verified(false, false);
    if (i < session_machine::max_auth_failures) {
      CHECK(code(a) == 535);
      CHECK(a.what == kind::read_command);
    } else {
      CHECK(a.what == kind::close);
      CHECK(code(a) == 421);
      CHECK(m.reason() == "too many failed logins");
    }
  }
  CHECK_FALSE(m.user());

  auto locked = over_tls();
  locked.on_line(bad, false);
  locked.on_lock(0);
  CHECK(locked.on_verified(false, true).what == kind::close);

  auto malformed = over_tls();
  malformed.on_line("AUTH PLAIN not-base64!", false);
  auto a = malformed.on_lock(0);
  CHECK(a.what == kind::verify);
  CHECK_FALSE(a.credentials);  // checked as a failure: the driver passes ok = false
}

TEST_CASE("session machine: no AUTH during a transaction; local clients may AUTH in clear") {
  auto s = outsider(false);
  s.peer_local = true;
  session_machine m(s);
  auto a = hello(m);
  CHECK(text(a).find("AUTH PLAIN LOGIN") != std::string::npos);
  m.on_line("AUTH PLAIN " + smtp::base64_encode(std::string("\0u\0p", 4)), false);
  m.on_lock(0);
  m.on_verified(true, false);
  envelope(m);
  CHECK(m.on_line("AUTH PLAIN x", false).replies[0].code == 503);

  auto none = allowed();
  session_machine plain(none);
  hello(plain);
  CHECK(plain.on_line("AUTH PLAIN x", false).replies[0].one_line() ==
        "502 5.5.1 AUTH not available");
}

TEST_CASE("session machine: the client gone during DATA, and a refused message") {
  session_machine m(allowed());
  hello(m);
  envelope(m);
  m.on_line("DATA", false);
  auto a = m.on_data_done(smtp::make_reply(554, "5.7.1", "refused by the provider"), "");
  CHECK(code(a) == 554);
  CHECK(m.refused() == 1);
  CHECK(code(m.on_line("DATA", false)) == 503);  // the transaction is over

  session_machine g(allowed());
  hello(g);
  envelope(g);
  g.on_line("DATA", false);
  a = g.on_data_done(std::nullopt, "client closed during DATA");
  CHECK(a.what == kind::close);
  CHECK(a.reset_relay);
  CHECK(a.replies.empty());  // nobody to answer
  CHECK(g.reason() == "client closed during DATA");
  CHECK(g.relayed() == 0);
}
