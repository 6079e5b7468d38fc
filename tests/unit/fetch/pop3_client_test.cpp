// pop3_client over a scripted stream: the bytes of a pipelined session, and what it reports
// when the connection resets, stalls or ends in a listing or a message.
// No co_await inside CHECK() (ARCHITECTURE.md, the coroutine rule).
#include <catch2/catch.hpp>

#include "../run_coroutine.hpp"
#include "../scripted_stream.hpp"
#include "fetch/pop3_client.hpp"

using namespace postern;
using namespace postern::fetch;
using namespace std::chrono_literals;

namespace {

pop3_params params() {
  pop3_params p;
  auto ep = conf::parse_endpoint("pop3://127.0.0.1:110");
  REQUIRE(ep);
  p.endpoint = *ep;
  p.login = "user";
  p.password = [](std::string&) -> asio::awaitable<std::optional<conf::secret>> {
    co_return conf::secret("pw");
  };
  p.reply_timeout = 200ms;
  p.retrieve_timeout = 200ms;
  p.message_timeout = 1s;
  return p;
}

using test::run_coroutine;

const char* login_script = "+OK ready\r\n";

/// A client logged in over `s` (greeting, CAPA with these capabilities, USER, PASS).
asio::awaitable<pop3_result> open(pop3_client& c, const asio::any_io_executor& ex,
                                  test::scripted_stream*& s, const std::string& capa) {
  auto stream = std::make_unique<test::scripted_stream>(ex);
  s = stream.get();
  s->then_read(login_script)
      .then_read("+OK\r\n" + capa + ".\r\n")
      .then_read("+OK\r\n")
      .then_read("+OK logged in\r\n");
  auto channel = std::make_unique<net::line_channel>(ex, std::move(stream));
  co_return co_await c.async_open(std::move(channel));
}

}  // namespace

TEST_CASE("pop3 client: a pipelined session on the wire, deletions counted at QUIT") {
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    pop3_client c(ex, params());
    test::scripted_stream* s = nullptr;
    auto r = co_await open(c, ex, s, "UIDL\r\nUSER\r\nPIPELINING\r\n");
    CHECK(r.ok());
    s->then_read("+OK\r\n1 aaa\r\n2 bbb\r\n.\r\n")
        .then_read("+OK 10 octets\r\nSubject: 1\r\n\r\n..x\r\n.\r\n")
        .then_read("+OK 10 octets\r\nSubject: 2\r\n\r\n.\r\n")
        .then_read("+OK deleted\r\n+OK deleted\r\n+OK bye\r\n");
    uid_listing uids;
    r = co_await c.async_uidl(uids);
    CHECK(r.ok());
    CHECK(uids.size() == 2);
    c.request_retr(1);
    c.request_retr(2);
    std::string got;
    const pop3_client::body_sink sink = [&got](const std::string& b) -> asio::awaitable<bool> {
      got += b;
      co_return true;
    };
    r = co_await c.async_retr(1, sink);
    CHECK(r.ok());
    r = co_await c.async_dele(1);
    CHECK(r.ok());
    r = co_await c.async_retr(2, sink);
    CHECK(r.ok());
    r = co_await c.async_dele(2);
    CHECK(r.ok());
    CHECK(c.pending_deletions() == 2);
    r = co_await c.async_quit();
    CHECK(r.ok());
    CHECK(c.deletions() == 2);
    CHECK(got == "Subject: 1\r\n\r\n.x\r\nSubject: 2\r\n\r\n");
    CHECK(s->written() ==
          "CAPA\r\nUSER user\r\nPASS pw\r\nUIDL\r\nRETR 1\r\nRETR 2\r\nDELE 1\r\nDELE 2\r\n"
          "QUIT\r\n");
  });
}

TEST_CASE("pop3 client: a reset in a listing, EOF in a message, a stalled RETR") {
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    pop3_client c(ex, params());
    test::scripted_stream* s = nullptr;
    auto r = co_await open(c, ex, s, "UIDL\r\n");
    CHECK(r.ok());
    s->then_read("+OK\r\n1 aaa\r\n");
    s->fail_operation(s->operations() + 3);  // the read after the first listing line
    uid_listing uids;
    r = co_await c.async_uidl(uids);
    CHECK(r.kind == failure_kind::connection);
    CHECK(r.detail.find("reading a listing") == 0);
    CHECK(s->closed());
  });
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    pop3_client c(ex, params());
    test::scripted_stream* s = nullptr;
    auto r = co_await open(c, ex, s, "");
    CHECK(r.ok());
    s->then_read("+OK\r\nSubject: cut\r\n\r\nhalf a me").then_eof();
    std::string got;
    const pop3_client::body_sink sink = [&got](const std::string& b) -> asio::awaitable<bool> {
      got += b;
      co_return true;
    };
    r = co_await c.async_retr(1, sink);
    CHECK(r.kind == failure_kind::connection);
    CHECK(r.detail.find("during RETR 1") == 0);
    // The delivery got part of the message but never its end: fetch must not count it
    // delivered (fetch_run aborts the delivery on a failed RETR).
    CHECK(got.find("half a me") != std::string::npos);
  });
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    pop3_client c(ex, params());
    test::scripted_stream* s = nullptr;
    auto r = co_await open(c, ex, s, "");
    CHECK(r.ok());
    s->then_read("+OK\r\nSubject: slow\r\n").then_stall();
    const pop3_client::body_sink sink = [](const std::string&) -> asio::awaitable<bool> {
      co_return true;
    };
    r = co_await c.async_retr(1, sink);
    CHECK(r.kind == failure_kind::timeout);
    CHECK(r.detail == "during RETR 1: timed out");
  });
}

TEST_CASE("pop3 client: deletions are not confirmed when QUIT's answer never comes") {
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    pop3_client c(ex, params());
    test::scripted_stream* s = nullptr;
    auto r = co_await open(c, ex, s, "PIPELINING\r\n");
    CHECK(r.ok());
    r = co_await c.async_dele(1);
    CHECK(r.ok());
    s->then_read("+OK deleted\r\n").then_eof();  // the DELE's answer, then no QUIT answer
    r = co_await c.async_quit();
    CHECK(r.kind == failure_kind::connection);
    // The server expunges only after a successful QUIT (RFC 1939 §6): fetch keeps the UID.
    CHECK(c.deletions() == 1);
    CHECK(s->written().ends_with("DELE 1\r\nQUIT\r\n"));
  });
}

TEST_CASE("pop3 client: STLS answered together with injected bytes ends before TLS") {
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto p = params();
    auto ep = conf::parse_endpoint("pop3+starttls://127.0.0.1:110");
    REQUIRE(ep);
    p.endpoint = *ep;
    pop3_client c(ex, p);
    auto stream = std::make_unique<test::scripted_stream>(ex);
    test::scripted_stream* s = stream.get();
    s->then_read("+OK ready\r\n").then_read("+OK begin TLS\r\n+OK injected\r\n");
    auto r = co_await c.async_open(std::make_unique<net::line_channel>(ex, std::move(stream)));
    CHECK(r.kind == failure_kind::protocol);
    CHECK(r.detail ==
          "server sent data after its STARTTLS reply (possible injection, CVE-2011-0411)");
    CHECK(s->written() == "STLS\r\n");
    CHECK(s->closed());
  });
}
