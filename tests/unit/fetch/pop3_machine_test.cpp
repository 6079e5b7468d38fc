// The POP3 client's dialogue, step by step, without a socket: the server's status lines go
// into the machine; what it asks to send or read, and how each operation ends, come out.
#include <catch2/catch.hpp>

#include "fetch/pop3_machine.hpp"
#include "forwarder/smtp/sasl.hpp"

using namespace postern;
using namespace postern::fetch;
using kind = pop3_machine::action::kind;
using state = pop3_machine::state;

namespace {

std::optional<pop3_status> ok(const char* text = "") { return pop3_status{true, text}; }
std::optional<pop3_status> err(const char* text = "no") { return pop3_status{false, text}; }

pop3_machine::settings plain() {
  pop3_machine::settings s;
  s.login = "user";
  s.server = "pop.example:110";
  return s;
}

/// Greeting and CAPA with these capability lines; returns the password request.
pop3_machine::action to_login(pop3_machine& m, const std::vector<std::string>& capa) {
  auto a = m.open();
  REQUIRE(a.what == kind::read_status);
  a = m.on_status(ok("ready"));
  REQUIRE(a.bytes == "CAPA\r\n");
  a = m.on_status(ok());
  REQUIRE(a.what == kind::read_lines);
  REQUIRE(a.capa);
  return m.on_capa(capa);
}

/// Logged in with USER/PASS; `capa` sets what the server offers.
pop3_machine ready(const std::vector<std::string>& capa = {"UIDL", "USER"}) {
  pop3_machine m(plain());
  REQUIRE(to_login(m, capa).what == kind::password);
  REQUIRE(m.on_password(conf::secret("pw"), "").bytes == "USER user\r\n");
  REQUIRE(m.on_status(ok()).bytes == "PASS pw\r\n");
  REQUIRE(m.on_status(ok("logged in")).result.ok());
  REQUIRE(m.current() == state::ready);
  return m;
}

}  // namespace

TEST_CASE("pop3 machine: greeting, CAPA, USER/PASS") {
  pop3_machine m(plain());
  auto a = to_login(m, {"UIDL", "USER", "PIPELINING"});
  CHECK(a.what == kind::password);
  CHECK(m.capabilities().pipelining);
  a = m.on_password(conf::secret("pw"), "");
  CHECK(a.bytes == "USER user\r\n");
  CHECK_FALSE(a.sensitive);
  a = m.on_status(ok());
  CHECK(a.bytes == "PASS pw\r\n");
  CHECK(a.sensitive);
  a = m.on_status(ok());
  CHECK(a.what == kind::done);
  CHECK(a.result.ok());
  CHECK(std::string(to_string(m.current())) == "ready");
}

TEST_CASE("pop3 machine: AUTH PLAIN when offered, and login refusals") {
  pop3_machine m(plain());
  to_login(m, {"SASL PLAIN LOGIN"});
  auto a = m.on_password(conf::secret("pw"), "");
  CHECK(a.bytes == "AUTH PLAIN " + smtp::base64_encode(std::string("\0user\0pw", 8)) + "\r\n");
  CHECK(a.sensitive);
  a = m.on_status(err("[AUTH] Authentication failed."));
  CHECK(a.what == kind::done);
  CHECK(a.result.kind == failure_kind::auth);
  CHECK(a.result.server == "[AUTH] Authentication failed.");
  CHECK(a.result.detail == "AUTH PLAIN as user refused");

  pop3_machine u(plain());
  to_login(u, {});
  u.on_password(conf::secret("pw"), "");
  a = u.on_status(err());  // USER refused
  CHECK(a.result.kind == failure_kind::auth);
  CHECK(a.result.detail == "USER/PASS as user refused");

  pop3_machine nopw(plain());
  to_login(nopw, {});
  a = nopw.on_password(std::nullopt, "password_command failed");
  CHECK(a.close);
  CHECK(a.result.kind == failure_kind::auth);
  CHECK(a.result.detail == "password_command failed");
}

TEST_CASE("pop3 machine: a refused greeting, a server without CAPA, not POP3 at all") {
  pop3_machine m(plain());
  m.open();
  auto a = m.on_status(err("busy"));
  CHECK(a.what == kind::done);
  CHECK(a.result.kind == failure_kind::rejected_permanent);
  CHECK(a.result.server == "busy");

  pop3_machine old(plain());
  old.open();
  old.on_status(ok());
  a = old.on_status(err("unknown command"));  // CAPA: an RFC 1939 server
  CHECK(a.what == kind::password);
  CHECK_FALSE(old.capabilities().uidl);

  pop3_machine smtp(plain());
  smtp.open();
  a = smtp.on_status(std::nullopt);  // "220 smtp.example ESMTP"
  CHECK(a.close);
  CHECK(a.result.kind == failure_kind::protocol);
  CHECK(a.result.detail == "not a POP3 server: unexpected reply");
}

TEST_CASE("pop3 machine: STLS by the one dialogue, injection, refusals") {
  auto s = plain();
  s.stls = true;
  pop3_machine m(s);
  auto a = m.open();
  CHECK(a.what == kind::read_status);
  CHECK(a.line);
  CHECK(m.current() == state::preamble);
  a = m.on_line("+OK ready", false);
  CHECK(a.bytes == "STLS\r\n");  // no CAPA in cleartext: nothing it says would be kept
  CHECK(a.line);
  a = m.on_line("+OK begin TLS", false);
  CHECK(a.what == kind::start_tls);
  a = m.on_tls({});
  CHECK(a.bytes == "CAPA\r\n");  // RFC 2595 §4: capabilities are learnt once TLS is up
  CHECK_FALSE(a.line);
  m.on_status(ok());
  a = m.on_capa({"USER", "SASL PLAIN"});
  CHECK(a.what == kind::password);

  pop3_machine injected(s);
  injected.open();
  injected.on_line("+OK ready", false);
  a = injected.on_line("+OK begin TLS", true);  // "+OK\r\n+OK injected" in one read
  CHECK(a.close);
  CHECK(a.result.kind == failure_kind::protocol);
  CHECK(a.result.detail ==
        "server sent data after its STARTTLS reply (possible injection, CVE-2011-0411)");

  pop3_machine refused(s);
  refused.open();
  refused.on_line("+OK ready", false);
  a = refused.on_line("-ERR unknown command", false);
  CHECK(a.close);
  CHECK(a.result.kind == failure_kind::tls);
  CHECK(a.result.detail ==
        "pop.example:110: POP3 server refused STLS (it may not offer it); refusing to continue "
        "in cleartext: server said \"-ERR unknown command\"");

  pop3_machine busy(s);
  busy.open();
  a = busy.on_line("-ERR too many connections", false);
  CHECK(a.what == kind::done);
  CHECK(a.result.kind == failure_kind::rejected_permanent);
  CHECK(a.result.server == "too many connections");

  pop3_machine smtp(s);
  smtp.open();
  a = smtp.on_line("220 smtp.example ESMTP", false);
  CHECK(a.close);
  CHECK(a.result.kind == failure_kind::protocol);

  auto implicit = plain();
  implicit.implicit_tls = true;
  pop3_machine first(implicit);
  CHECK(first.open().what == kind::start_tls);
  a = first.on_tls({failure_kind::tls, {}, "certificate verify failed"});
  CHECK(a.result.kind == failure_kind::tls);
  CHECK(first.broken());
}

TEST_CASE("pop3 machine: listings, and the refusal of one") {
  auto m = ready();
  auto a = m.listing("UIDL", "UIDL refused: the server cannot tell messages apart");
  CHECK(a.bytes == "UIDL\r\n");
  a = m.on_status(ok());
  CHECK(a.what == kind::read_lines);
  CHECK_FALSE(a.capa);
  CHECK(m.on_lines_done().result.ok());

  a = m.listing("UIDL", "UIDL refused: the server cannot tell messages apart");
  a = m.on_status(err());
  CHECK(a.what == kind::done);
  CHECK(a.result.kind == failure_kind::rejected_permanent);
  CHECK(a.result.detail == "UIDL refused: the server cannot tell messages apart");
}

TEST_CASE("pop3 machine: RETR without PIPELINING, and a refused one") {
  auto m = ready();
  CHECK(m.request_retr(1).what == kind::done);  // nothing asked ahead
  auto a = m.retr(1);
  CHECK(a.bytes == "RETR 1\r\n");
  a = m.on_status(ok("120 octets"));
  CHECK(a.what == kind::read_body);
  CHECK(a.number == 1);
  CHECK_FALSE(a.discard);
  CHECK(m.on_body_done().result.ok());

  m.retr(2);
  a = m.on_status(err("no such message"));
  CHECK(a.result.kind == failure_kind::rejected_permanent);
  CHECK(a.result.server == "no such message");
}

TEST_CASE("pop3 machine: DELE without PIPELINING is awaited and counted") {
  auto m = ready();
  auto a = m.dele(3);
  CHECK(a.bytes == "DELE 3\r\n");
  CHECK(m.on_status(ok()).result.ok());
  CHECK(m.deletions() == 1);
  m.dele(4);
  a = m.on_status(err("locked"));
  CHECK(a.result.kind == failure_kind::rejected_permanent);
  REQUIRE(a.refused_dele);
  CHECK(a.refused_dele->first == 4);
  CHECK(m.deletions() == 1);
}

TEST_CASE("pop3 machine: the pipelining window answers in the order things were sent") {
  auto m = ready({"UIDL", "USER", "PIPELINING"});
  // Ask for 1 and 2 ahead, retrieve 1, mark it deleted, retrieve 2.
  auto a = m.request_retr(1);
  CHECK(a.what == kind::queue);
  CHECK(a.bytes == "RETR 1\r\n");
  CHECK(m.request_retr(2).bytes == "RETR 2\r\n");
  a = m.retr(1);
  CHECK(a.what == kind::read_status);
  CHECK(a.flush_first);
  a = m.on_status(ok());
  CHECK(a.what == kind::read_body);
  CHECK(a.number == 1);
  CHECK(m.on_body_done().result.ok());
  a = m.dele(1);
  CHECK(a.what == kind::queue);
  CHECK(a.bytes == "DELE 1\r\n");
  CHECK(m.pending_deletions() == 1);
  a = m.retr(2);  // RETR 2 was sent before DELE 1: its answer comes first
  CHECK(a.what == kind::read_status);
  a = m.on_status(ok());
  CHECK(a.what == kind::read_body);
  CHECK(a.number == 2);
  CHECK(m.on_body_done().result.ok());
  CHECK(m.deletions() == 0);  // DELE 1's answer is still on its way
  a = m.quit();
  CHECK(a.bytes == "QUIT\r\n");
  a = m.on_status(ok());  // DELE 1
  CHECK(a.what == kind::read_status);
  CHECK(m.deletions() == 1);
  CHECK(m.pending_deletions() == 0);
  a = m.on_status(ok("bye"));  // QUIT
  CHECK(a.what == kind::done);
  CHECK(a.close);
  CHECK(a.result.ok());
}

TEST_CASE("pop3 machine: a message asked for ahead but not wanted is read and dropped") {
  auto m = ready({"PIPELINING", "UIDL"});
  m.request_retr(5);
  m.dele(4);
  auto a = m.quit();
  a = m.on_status(ok());  // RETR 5: its message must be read to reach the next answer
  CHECK(a.what == kind::read_body);
  CHECK(a.discard);
  CHECK(a.number == 5);
  a = m.on_body_done();
  CHECK(a.what == kind::read_status);
  a = m.on_status(err("cannot delete"));  // DELE 4
  REQUIRE(a.refused_dele);
  CHECK(a.refused_dele->first == 4);
  CHECK(a.refused_dele->second == "cannot delete");
  CHECK(m.deletions() == 0);
  a = m.on_status(ok());  // QUIT
  CHECK(a.result.ok());
}

TEST_CASE("pop3 machine: a refused RETR asked for ahead; an I/O failure empties the window") {
  auto m = ready({"PIPELINING"});
  m.request_retr(7);
  m.request_retr(8);
  auto a = m.retr(8);
  a = m.on_status(err("gone"));  // RETR 7, refused: nothing to read
  CHECK(a.what == kind::read_status);
  a = m.on_status(ok());  // RETR 8
  CHECK(a.what == kind::read_body);
  CHECK(a.number == 8);

  m.on_body_done();
  m.dele(8);
  a = m.on_io_failure({failure_kind::connection, {}, "waiting for the server: reset"});
  CHECK(a.close);
  CHECK(m.broken());
  CHECK(m.pending_deletions() == 0);
  CHECK(m.deletions() == 0);  // the DELE was never confirmed: the message stays on the server
}

TEST_CASE("pop3 machine: a refused greeting or login ends the session; nothing is sent after") {
  pop3_machine m(plain());
  m.open();
  auto a = m.on_status(err("busy"));
  CHECK(a.close);
  CHECK(m.broken());
  a = m.retr(1);
  CHECK(a.what == kind::done);
  CHECK(a.bytes.empty());
  CHECK(a.result.detail == "RETR while the session is broken, not ready");

  pop3_machine refused(plain());
  to_login(refused, {});
  refused.on_password(conf::secret("pw"), "");
  a = refused.on_status(err("no such user"));
  CHECK(a.close);
  CHECK(a.result.kind == failure_kind::auth);
  CHECK(refused.dele(1).result.kind == failure_kind::protocol);
  CHECK(refused.listing("UIDL").bytes.empty());
}
