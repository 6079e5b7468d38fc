// smtp::client over a scripted stream: the bytes it writes for a dialogue, and what it reports
// when the connection resets, stalls, ends early or carries something that is not SMTP.
// No co_await inside CHECK(): GCC 12 mishandles temporaries of a full-expression that spans a
// suspension (ARCHITECTURE.md, the coroutine rule); results go to named locals first.
#include <catch2/catch.hpp>

#include "../run_coroutine.hpp"
#include "../scripted_stream.hpp"
#include "forwarder/smtp/client.hpp"

using namespace postern;
using namespace std::chrono_literals;
using smtp::failure_kind;

namespace {

smtp::client_params params(const char* url = "smtp://127.0.0.1:25") {
  smtp::client_params p;
  std::string error;
  auto ep = conf::parse_endpoint(url, &error);
  REQUIRE(ep);
  p.endpoint = *ep;
  p.helo_name = "client.example";
  p.reply_timeout = 200ms;
  p.final_reply_timeout = 200ms;
  p.quit_timeout = 200ms;
  return p;
}

using test::run_coroutine;

std::unique_ptr<net::line_channel> channel_over(const asio::any_io_executor& ex,
                                                test::scripted_stream*& script) {
  auto s = std::make_unique<test::scripted_stream>(ex);
  script = s.get();
  return std::make_unique<net::line_channel>(ex, std::move(s));
}

}  // namespace

TEST_CASE("smtp client: one message, the bytes on the wire") {
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    test::scripted_stream* s = nullptr;
    auto channel = channel_over(ex, s);
    s->then_read("220 mx ready\r\n")
        .then_read("250-mx\r\n250 8BITMIME\r\n")
        .then_read("250 ok\r\n")
        .then_read("250 ok\r\n")
        .then_read("354 go\r\n")
        .then_read("250 queued as 1\r\n")
        .then_read("221 bye\r\n");
    smtp::client c(ex, params());
    auto r = co_await c.async_open(std::move(channel));
    CHECK(r.ok());
    r = co_await c.async_envelope("<a@x>", "<b@y>");
    CHECK(r.ok());
    const std::string body = "Subject: t\r\n\r\n.leading dot\r\n";
    r = co_await c.async_write_body(body.data(), body.size());
    CHECK(r.ok());
    r = co_await c.async_end_data();
    CHECK(r.ok());
    CHECK(r.server.code == 250);
    co_await c.async_quit();
    CHECK(s->written() ==
          "EHLO client.example\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"
          "Subject: t\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n");
    CHECK(s->closed());
  });
}

TEST_CASE("smtp client: with PIPELINING the envelope is one write, replies in one read") {
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    test::scripted_stream* s = nullptr;
    auto channel = channel_over(ex, s);
    s->then_read("220 mx\r\n")
        .then_read("250-mx\r\n250 PIPELINING\r\n")
        .then_read("250 ok\r\n550 no such user\r\n554 no valid recipients\r\n");
    smtp::client c(ex, params());
    auto r = co_await c.async_open(std::move(channel));
    CHECK(r.ok());
    r = co_await c.async_envelope("<a@x>", "<b@y>");
    CHECK(r.kind == failure_kind::rejected_permanent);
    CHECK(r.server.code == 550);
    CHECK(s->written() == "EHLO client.example\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
  });
}

TEST_CASE("smtp client: a reset at each operation of the dialogue is a connection failure") {
  // Operations: 1 read greeting, 2 write EHLO, 3 read EHLO reply, 4 write MAIL, 5 read reply.
  for (std::size_t n = 1; n <= 5; ++n) {
    run_coroutine([n](asio::any_io_executor ex) -> asio::awaitable<void> {
      test::scripted_stream* s = nullptr;
      auto channel = channel_over(ex, s);
      s->then_read("220 mx\r\n").then_read("250 mx\r\n").then_read("250 ok\r\n").fail_operation(n);
      smtp::client c(ex, params());
      auto r = co_await c.async_open(std::move(channel));
      if (r.ok()) r = co_await c.async_mail("<a@x>");
      INFO("failing operation " << n << ": " << r.detail);
      CHECK(r.kind == failure_kind::connection);
      CHECK((r.detail.find("waiting for a reply") == 0 || r.detail.find("sending a command") == 0));
      CHECK(s->closed());
      CHECK_FALSE(c.reusable());
    });
  }
}

TEST_CASE("smtp client: a reply cut short by EOF, a stalled server, a line too long") {
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    test::scripted_stream* s = nullptr;
    auto channel = channel_over(ex, s);
    s->then_read("220 mx\r\n").then_read("250-mx\r\n250-PIPELINING\r\n").then_eof();
    smtp::client c(ex, params());
    auto r = co_await c.async_open(std::move(channel));
    CHECK(r.kind == failure_kind::connection);
    CHECK(r.detail.find("waiting for a reply") == 0);
  });
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    test::scripted_stream* s = nullptr;
    auto channel = channel_over(ex, s);
    s->then_read("220 mx\r\n").then_read("250-mx\r\n").then_stall();  // half a reply, then silence
    smtp::client c(ex, params());
    auto r = co_await c.async_open(std::move(channel));
    CHECK(r.kind == failure_kind::timeout);
    CHECK(r.detail == "waiting for a reply: timed out");
  });
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    test::scripted_stream* s = nullptr;
    auto channel = channel_over(ex, s);
    s->then_read("220 " + std::string(5000, 'x') + "\r\n");
    smtp::client c(ex, params());
    auto r = co_await c.async_open(std::move(channel));
    CHECK(r.kind == failure_kind::protocol);
    CHECK(r.detail == "reply line too long");
  });
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    test::scripted_stream* s = nullptr;
    auto channel = channel_over(ex, s);
    s->then_read("+OK POP3 server ready\r\n");
    smtp::client c(ex, params());
    auto r = co_await c.async_open(std::move(channel));
    CHECK(r.kind == failure_kind::protocol);
    CHECK(r.detail.find("not an SMTP server?") != std::string::npos);
    CHECK(s->written().empty());
  });
}

TEST_CASE("smtp client: the message is never completed when the connection drops in it") {
  // The final dot is what makes a server deliver (RFC 5321 §4.1.1.4): a write that fails
  // before it must leave no dot on the wire, and the result must not be ok.
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    test::scripted_stream* s = nullptr;
    auto channel = channel_over(ex, s);
    s->then_read("220 mx\r\n")
        .then_read("250 mx\r\n")
        .then_read("250 ok\r\n")
        .then_read("250 ok\r\n")
        .then_read("354 go\r\n");
    smtp::client c(ex, params());
    auto r = co_await c.async_open(std::move(channel));
    CHECK(r.ok());
    r = co_await c.async_envelope("<a@x>", "<b@y>");
    CHECK(r.ok());
    const std::string body(300 * 1024, 'a');
    s->fail_operation(s->operations() + 1);  // the first body write
    r = co_await c.async_write_body(body.data(), body.size());
    CHECK(r.kind == failure_kind::connection);
    r = co_await c.async_end_data();
    CHECK_FALSE(r.ok());
    CHECK(s->written().find("\r\n.\r\n") == std::string::npos);
    CHECK(s->closed());
  });
}

TEST_CASE("smtp client: bytes injected after STARTTLS's 220 end the session before TLS") {
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    test::scripted_stream* s = nullptr;
    auto channel = channel_over(ex, s);
    s->then_read("220 mx\r\n")
        .then_read("250-mx\r\n250 STARTTLS\r\n")
        .then_read("220 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n");
    auto p = params("smtp+starttls://127.0.0.1:587");
    p.login = "user";
    smtp::client c(ex, p);
    auto r = co_await c.async_open(std::move(channel));
    CHECK(r.kind == failure_kind::protocol);
    CHECK(r.detail ==
          "server sent data after its STARTTLS reply (possible injection, CVE-2011-0411)");
    CHECK(s->written() == "EHLO client.example\r\nSTARTTLS\r\n");
    CHECK(s->closed());
  });
}
