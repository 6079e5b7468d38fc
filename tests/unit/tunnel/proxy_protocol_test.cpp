#include <catch2/catch.hpp>

#include <sys/socket.h>

#include "tunnel/proxy_protocol.hpp"

using namespace postern::tunnel;

namespace {
proxy_parse_result parse(const std::string& s) {
  return parse_proxy_header({reinterpret_cast<const std::uint8_t*>(s.data()), s.size()});
}
}  // namespace

TEST_CASE("PROXY v1 TCP4 header parses and leaves the payload") {
  auto r = parse("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nHELLO");
  REQUIRE(r.status == proxy_parse_status::done);
  CHECK(r.consumed == 45);
  CHECK(r.addresses.source() == "192.0.2.1:56324");
  CHECK(r.addresses.destination_port == 443);
}

TEST_CASE("PROXY v1 waits for more bytes, then rejects overlong and malformed headers") {
  CHECK(parse("PROX").status == proxy_parse_status::need_more);
  CHECK(parse("PROXY TCP4 1.2.3.4").status == proxy_parse_status::need_more);
  auto longer = parse("PROXY TCP4 " + std::string(120, '1'));
  CHECK(longer.status == proxy_parse_status::invalid);
  CHECK(longer.error == "PROXY v1 header longer than 107 bytes");
  auto bad = parse("PROXY TCP4 1.2.3.999 1.2.3.4 1 2\r\n");
  CHECK(bad.status == proxy_parse_status::invalid);
  CHECK(bad.error == "PROXY v1 header has an invalid address");
  CHECK(parse("PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n").error ==
        "PROXY v1 header has an invalid port");
  CHECK(parse("GET / HTTP/1.1\r\n").error ==
        "connection does not start with a PROXY protocol header");
  CHECK(parse("PROXY UNKNOWN\r\n").status == proxy_parse_status::done);
  CHECK(parse(std::string("PROXY TCP4 2.0.2.1\0 1.1.1.1 1 2\r\n", 33)).error ==
        "PROXY v1 header has an invalid address");
}

TEST_CASE("PROXY v2 round-trips through the builder for IPv4 and IPv6") {
  proxy_addresses a{AF_INET, "192.0.2.1", "198.51.100.2", 1234, 25};
  auto wire = build_proxy_v2(a);
  CHECK(wire.size() == 28);
  auto r = parse(wire + "payload");
  REQUIRE(r.status == proxy_parse_status::done);
  CHECK(r.consumed == 28);
  CHECK(r.addresses.source() == "192.0.2.1:1234");
  proxy_addresses b{AF_INET6, "2001:db8::1", "2001:db8::2", 5555, 465};
  auto r6 = parse(build_proxy_v2(b));
  REQUIRE(r6.status == proxy_parse_status::done);
  CHECK(r6.addresses.source() == "[2001:db8::1]:5555");
}

TEST_CASE("PROXY v2 LOCAL and truncated headers") {
  auto local = build_proxy_v2({});
  auto r = parse(local);
  REQUIRE(r.status == proxy_parse_status::done);
  CHECK(r.addresses.family == 0);
  proxy_addresses a{AF_INET, "192.0.2.1", "198.51.100.2", 1, 2};
  auto wire = build_proxy_v2(a);
  CHECK(parse(wire.substr(0, 20)).status == proxy_parse_status::need_more);
  wire[12] = 0x31;  // version 3
  CHECK(parse(wire).error == "PROXY v2 header has an unknown version");
}

TEST_CASE("PROXY v1 builder matches the specification's examples") {
  CHECK(build_proxy_v1({AF_INET, "192.0.2.1", "198.51.100.2", 56324, 443}) ==
        "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
  CHECK(build_proxy_v1({}) == "PROXY UNKNOWN\r\n");
}
