// The upstream pool over scripted provider connections: a refused login backs the mailbox off
// (no second attempt hammers the provider), a released session is reused without logging in
// again, and one the provider closed meanwhile is not.
// No co_await inside CHECK() (ARCHITECTURE.md, the coroutine rule).
#include <catch2/catch.hpp>

#include "../run_coroutine.hpp"
#include "../scripted_stream.hpp"
#include "forwarder/upstream_pool.hpp"
#include "scripted_provider.hpp"

using namespace postern;
using namespace std::chrono_literals;
using test::run_coroutine;

using test::config_with_mailbox;
using test::greets_and_logs_in;
using test::scripted_provider;

TEST_CASE("upstream pool: a refused login backs the mailbox off without a second attempt") {
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    const auto config = config_with_mailbox();
    const conf::mailbox& m = config.registry.mailboxes[0];
    forwarder::upstream_pool pool(ex, config, false);
    scripted_provider provider{[](test::scripted_stream& s) {
      s.then_read("220 provider\r\n")
          .then_read("250-provider\r\n250 AUTH PLAIN\r\n")
          .then_read("535 5.7.8 authentication failed\r\n");
    }};
    pool.set_connector(provider.source(ex));
    CHECK(pool.admit(m).code == 0);
    auto lease = co_await pool.async_acquire(m, "s1");
    CHECK_FALSE(lease.client);
    CHECK(lease.failure.kind == smtp::failure_kind::auth);
    CHECK(lease.failure.server.code == 535);
    const smtp::reply next = pool.admit(m);
    CHECK(next.code == 454);  // the next submission waits: a provider may lock the mailbox
    CHECK(next.one_line().find("535 5.7.8 authentication failed") != std::string::npos);
    CHECK(provider.connections == 1);
    pool.close_all();
  });
}

TEST_CASE("upstream pool: a released session is reused; one the provider closed is not") {
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    const auto config = config_with_mailbox();
    const conf::mailbox& m = config.registry.mailboxes[0];
    forwarder::upstream_pool pool(ex, config, false);
    scripted_provider provider{greets_and_logs_in};
    pool.set_connector(provider.source(ex));
    auto lease = co_await pool.async_acquire(m, "s1");
    REQUIRE(lease.client);
    CHECK_FALSE(lease.reused);
    pool.release(m, std::move(lease.client));
    lease = co_await pool.async_acquire(m, "s2");
    REQUIRE(lease.client);
    CHECK(lease.reused);
    CHECK(provider.connections == 1);  // no second greeting, no second login

    provider.last->then_read("421 4.4.2 idle timeout\r\n");  // the provider hangs up
    pool.release(m, std::move(lease.client));
    lease = co_await pool.async_acquire(m, "s3");
    REQUIRE(lease.client);
    CHECK_FALSE(lease.reused);
    CHECK(provider.connections == 2);
    pool.close_all();
  });
}

TEST_CASE("upstream pool: a connection reset at the greeting is no login failure") {
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    const auto config = config_with_mailbox();
    const conf::mailbox& m = config.registry.mailboxes[0];
    forwarder::upstream_pool pool(ex, config, false);
    scripted_provider provider{[](test::scripted_stream& s) { s.fail_operation(1); }};
    pool.set_connector(provider.source(ex));
    auto lease = co_await pool.async_acquire(m, "s1");
    CHECK_FALSE(lease.client);
    CHECK(lease.failure.kind == smtp::failure_kind::connection);
    CHECK(pool.admit(m).code == 0);  // no back-off: the next submission tries again
    pool.close_all();
  });
}
