#include <catch2/catch.hpp>

#include "forwarder/client_limits.hpp"

using namespace postern::forwarder;
using verdict = client_limits::verdict;

TEST_CASE("sessions are limited in all, per address, and from outside allow") {
  auto limits = std::make_shared<client_limits>();
  const client_limits::limits l{6, 2};
  std::vector<std::unique_ptr<client_limits::ticket>> held;
  auto admit = [&](const char* ip, bool allowed) {
    auto [v, t] = client_limits::admit(limits, ip, allowed, l);
    if (t) held.push_back(std::move(t));
    return v;
  };
  CHECK(admit("10.0.0.1", true) == verdict::admitted);
  CHECK(admit("10.0.0.1", true) == verdict::admitted);
  CHECK(admit("10.0.0.1", true) == verdict::too_many_from_address);
  // Outside allow: at most half of max_sessions.
  CHECK(admit("192.0.2.1", false) == verdict::admitted);
  CHECK(admit("192.0.2.2", false) == verdict::admitted);
  CHECK(admit("192.0.2.3", false) == verdict::admitted);
  CHECK(admit("192.0.2.4", false) == verdict::too_many_outside);
  CHECK(admit("10.0.0.2", true) == verdict::admitted);
  CHECK(limits->sessions() == 6);
  CHECK(admit("10.0.0.3", true) == verdict::too_many_sessions);
  // A ticket gives its place back when it goes.
  held.erase(held.begin());
  CHECK(limits->sessions() == 5);
  CHECK(admit("10.0.0.1", true) == verdict::admitted);
}

TEST_CASE("an address that keeps failing AUTH is locked out for a while, others are not") {
  client_limits limits;
  const auto t0 = client_limits::clock::now();
  for (int i = 0; i < client_limits::auth_failures_allowed - 1; ++i)
    limits.auth_failed("192.0.2.9", t0 + std::chrono::seconds(i));
  CHECK_FALSE(limits.auth_locked("192.0.2.9", t0 + std::chrono::seconds(10)));
  limits.auth_failed("192.0.2.9", t0 + std::chrono::seconds(10));
  auto wait = limits.auth_locked("192.0.2.9", t0 + std::chrono::seconds(11));
  REQUIRE(wait);
  CHECK(*wait == std::chrono::seconds(15 * 60));  // 15 minutes after the last failure
  CHECK_FALSE(limits.auth_locked("192.0.2.10", t0));
  CHECK_FALSE(
      limits.auth_locked("192.0.2.9", t0 + std::chrono::seconds(10) + client_limits::auth_window));
  // Failures further apart than the window do not add up.
  limits.auth_failed("198.51.100.1", t0);
  limits.auth_failed("198.51.100.1", t0 + client_limits::auth_window * 2);
  CHECK_FALSE(limits.auth_locked("198.51.100.1", t0 + client_limits::auth_window * 2));
}
