// net::deadline: the expiry runs once, a moved or disarmed deadline never fires its old
// expiry, and the owner may go while it is armed. Driven on an io_context run for a bounded
// time: what matters is which expiries ran, not when.
#include <catch2/catch.hpp>

#include <asio/io_context.hpp>

#include "tunnel/net/deadline.hpp"

using postern::net::deadline;
using namespace std::chrono_literals;

TEST_CASE("deadline: expires once, and says so") {
  asio::io_context io;
  int fired = 0;
  deadline d(io.get_executor(), [&] { ++fired; });
  d.arm_after(1ms);
  CHECK(d.armed());
  CHECK_FALSE(d.expired());
  io.run_for(200ms);
  CHECK(fired == 1);
  CHECK(d.expired());
  CHECK_FALSE(d.armed());
}

TEST_CASE("deadline: moving it later or disarming it drops the old expiry") {
  asio::io_context io;
  int fired = 0;
  deadline d(io.get_executor(), [&] { ++fired; });
  d.arm_after(1ms);
  d.arm_after(1h);  // moved: the first expiry must not run
  io.run_for(50ms);
  CHECK(fired == 0);
  CHECK_FALSE(d.expired());
  d.arm_after(1ms);
  d.disarm();
  io.run_for(50ms);
  CHECK(fired == 0);
  CHECK_FALSE(d.armed());
}

TEST_CASE("deadline: an expiry already queued when the deadline is moved does not run") {
  asio::io_context io;
  int fired = 0;
  deadline d(io.get_executor(), [&] { ++fired; });
  d.arm(deadline::clock::now() - 1ms);  // passed already: its handler is queued at once
  io.poll_one();                        // ... and runs: one expiry
  CHECK(fired == 1);
  d.arm(deadline::clock::now() - 1ms);
  d.arm_after(1h);  // moved before its queued handler ran
  io.run_for(50ms);
  CHECK(fired == 1);
}

TEST_CASE("deadline: the owner may be destroyed while it is armed") {
  asio::io_context io;
  int fired = 0;
  {
    deadline d(io.get_executor(), [&] { ++fired; });
    d.arm(deadline::clock::now() - 1ms);
  }
  io.run_for(50ms);
  CHECK(fired == 0);
}

TEST_CASE("deadline: the expiry may arm it again (a deadline that slides)") {
  asio::io_context io;
  int fired = 0;
  std::unique_ptr<deadline> d;
  d = std::make_unique<deadline>(io.get_executor(), [&] {
    if (++fired < 3) d->arm_after(1ms);
  });
  d->arm_after(1ms);
  io.run_for(300ms);
  CHECK(fired == 3);
}
