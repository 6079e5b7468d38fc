#include <catch2/catch.hpp>

#include "conf/endpoint.hpp"

using namespace postern::conf;

TEST_CASE("addresses: host:port, [v6]:port, unix and systemd") {
  auto a = parse_address("127.0.0.1:5001", true);
  REQUIRE(a);
  CHECK(a->host == "127.0.0.1");
  CHECK(a->port == 5001);
  CHECK(a->is_local());
  auto v6 = parse_address("[::1]:993", false);
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->to_string() == "[::1]:993");
  auto u = parse_address("unix:/run/postern.sock", false);
  REQUIRE(u);
  CHECK(u->kind == address_kind::unix_path);
  auto s = parse_address("systemd:smtps", true);
  REQUIRE(s);
  CHECK(s->kind == address_kind::systemd);
  CHECK_FALSE(parse_address("pop3s.pec.aruba.it:995", false)->is_local());
}

TEST_CASE("bad addresses say what is wrong") {
  std::string error;
  CHECK_FALSE(parse_address("localhost", false, &error));
  CHECK(error == "missing port in \"localhost\" (write host:port)");
  CHECK_FALSE(parse_address("::1:25", false, &error));
  CHECK(error == "IPv6 address \"::1:25\" must be written in brackets, as [addr]:port");
  CHECK_FALSE(parse_address("host:99999", false, &error));
  CHECK(error == "invalid port \"99999\" in \"host:99999\" (1-65535)");
  CHECK_FALSE(parse_address("systemd:x", false, &error));
  CHECK(error == "systemd: sockets can only be listened on");
  CHECK_FALSE(parse_address("unix:relative", false, &error));
  CHECK_FALSE(parse_address("smtps://host:465", false, &error));
}

TEST_CASE("endpoint URLs fix the TLS mode and default the port") {
  auto e = parse_endpoint("smtps://smtps.pec.aruba.it");
  REQUIRE(e);
  CHECK(e->tls == tls_mode::implicit);
  CHECK(e->protocol == app_protocol::smtp);
  CHECK(e->addr.port == 465);
  auto s = parse_endpoint("smtp+starttls://mail.example.org");
  REQUIRE(s);
  CHECK(s->tls == tls_mode::starttls);
  CHECK(s->addr.port == 587);
  CHECK(parse_endpoint("pop3s://h")->addr.port == 995);
  CHECK(parse_endpoint("imap+starttls://h")->addr.port == 143);
  auto l = parse_endpoint("lmtp:/run/dovecot/lmtp");
  REQUIRE(l);
  CHECK(l->addr.kind == address_kind::unix_path);
  CHECK(l->addr.path == "/run/dovecot/lmtp");
  std::string error;
  CHECK_FALSE(parse_endpoint("tls://host", &error));
  CHECK(error == "missing port in \"host\" (write host:port)");
  CHECK_FALSE(parse_endpoint("smtpss://host", &error));
  CHECK(error.starts_with("unknown URL scheme \"smtpss\""));
}

TEST_CASE("a port that belongs to the other TLS mode gets advice") {
  auto advice = [](const char* url) { return port_scheme_advice(*parse_endpoint(url)); };
  CHECK(advice("smtp+starttls://h:465") == "465 is implicit TLS: use smtps://");
  CHECK(advice("smtp://h:465") == "465 is implicit TLS: use smtps://");
  CHECK(advice("smtps://h:587") == "587 is submission with STARTTLS: use smtp+starttls://");
  CHECK(advice("smtps://h:25").starts_with("25 speaks STARTTLS"));
  CHECK(advice("pop3+starttls://h:995") == "995 is implicit TLS: use pop3s://");
  CHECK(advice("pop3s://h:110").starts_with("110 speaks STLS"));
  CHECK(advice("imap://h:993") == "993 is implicit TLS: use imaps://");
  // Agreeing ports, other ports, and cleartext on a STARTTLS port are fine.
  CHECK(advice("smtps://h:465").empty());
  CHECK(advice("smtp+starttls://h:587").empty());
  CHECK(advice("smtp://h:25").empty());
  CHECK(advice("smtps://h:10465").empty());
  CHECK(advice("lmtp:/run/dovecot/lmtp").empty());
}
