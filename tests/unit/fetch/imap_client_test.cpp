// imap_client over a scripted stream: the bytes of a pipelined session (login, SELECT,
// listing, bodies asked for ahead, flag changes and expunges sent without waiting), what the
// client reports when the connection ends inside a literal or stalls, IDLE, and the login
// forms a server's capabilities call for.
// No co_await inside CHECK() (ARCHITECTURE.md, the coroutine rule).
#include <catch2/catch.hpp>

#include "../run_coroutine.hpp"
#include "../scripted_stream.hpp"
#include "fetch/imap_client.hpp"

using namespace postern;
using namespace postern::fetch;
using namespace std::chrono_literals;

namespace {

imap_params params(std::string password = "pw") {
  imap_params p;
  auto ep = conf::parse_endpoint("imap://127.0.0.1:143");
  REQUIRE(ep);
  p.endpoint = *ep;
  p.login = "user";
  p.password = [password](std::string&) -> asio::awaitable<std::optional<conf::secret>> {
    co_return conf::secret(password);
  };
  p.reply_timeout = 200ms;
  p.retrieve_timeout = 200ms;
  p.message_timeout = 1s;
  return p;
}

using test::run_coroutine;

/// A client logged in over `s`: the greeting carries the capabilities, the login's OK too.
asio::awaitable<imap_result> open(imap_client& c, const asio::any_io_executor& ex,
                                  test::scripted_stream*& s, const std::string& caps) {
  auto stream = std::make_unique<test::scripted_stream>(ex);
  s = stream.get();
  s->then_read("* OK [CAPABILITY IMAP4rev1 " + caps + "] ready\r\n")
      .then_read("p1 OK [CAPABILITY IMAP4rev1 " + caps + "] Logged in\r\n");
  auto channel = std::make_unique<net::line_channel>(ex, std::move(stream));
  co_return co_await c.async_open(std::move(channel));
}

const std::string select_answer =
    "* FLAGS (\\Seen \\Deleted)\r\n* 2 EXISTS\r\n* OK [UIDVALIDITY 77] x\r\n"
    "* OK [UIDNEXT 12] x\r\n";

}  // namespace

TEST_CASE("imap client: a pipelined session on the wire") {
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    imap_client c(ex, params());
    test::scripted_stream* s = nullptr;
    auto r = co_await open(c, ex, s, "AUTH=PLAIN SASL-IR UIDPLUS");
    CHECK(r.ok());
    s->then_read(select_answer + "p2 OK [READ-WRITE] selected\r\n")
        .then_read(
            "* 1 FETCH (UID 10 RFC822.SIZE 14)\r\n* 2 FETCH (UID 11 RFC822.SIZE 9)\r\n"
            "* 2 FETCH (FLAGS (\\Seen))\r\np3 OK done\r\n")
        .then_read("* 1 FETCH (UID 10 BODY[] {14}\r\nSubject: 1\r\n\r\n")
        .then_read(")\r\np4 OK done\r\n* 2 FETCH (BODY[] {9}\r\nX: 2\r\n\r\n")
        .then_read("a UID 11)\r\np5 OK done\r\n")
        .then_read("p6 OK stored\r\n* 1 EXPUNGE\r\np7 OK expunged\r\np8 OK noop\r\n")
        .then_read("* BYE bye\r\np9 OK logged out\r\n");
    r = co_await c.async_select("INBOX", false);
    CHECK(r.ok());
    CHECK(c.folder().uidvalidity == 77);
    CHECK(c.folder().uidnext == 12);
    CHECK(c.folder().exists == 2);
    std::vector<imap_listed> listed;
    r = co_await c.async_list(10, listed);
    CHECK(r.ok());
    REQUIRE(listed.size() == 2);
    CHECK(listed[1].uid == 11);
    CHECK(listed[1].size == 9);
    c.request_body(10);
    c.request_body(11);
    std::string got;
    const imap_client::body_sink sink = [&got](const std::string& b) -> asio::awaitable<bool> {
      got += b;
      co_return true;
    };
    bool found = false;
    r = co_await c.async_body(10, sink, found);
    CHECK(r.ok());
    CHECK(found);
    CHECK(got == "Subject: 1\r\n\r\n");
    got.clear();
    r = co_await c.async_body(11, sink, found);
    CHECK(r.ok());
    CHECK(found);
    CHECK(got == "X: 2\r\n\r\na");
    c.store("10", "\\Deleted");
    c.expunge("10");
    r = co_await c.async_sync();
    CHECK(r.ok());
    CHECK(c.expunged() == 1);
    CHECK(c.refusals() == 0);
    r = co_await c.async_logout();
    CHECK(r.ok());
    CHECK(s->written() ==
          "p1 AUTHENTICATE PLAIN AHVzZXIAcHc=\r\np2 SELECT INBOX\r\n"
          "p3 UID FETCH 10:* (UID RFC822.SIZE)\r\np4 UID FETCH 10 (UID BODY.PEEK[])\r\n"
          "p5 UID FETCH 11 (UID BODY.PEEK[])\r\np6 UID STORE 10 +FLAGS.SILENT (\\Deleted)\r\n"
          "p7 UID EXPUNGE 10\r\np8 NOOP\r\np9 LOGOUT\r\n");
  });
}

TEST_CASE("imap client: a message the server no longer has, and a refused change") {
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    imap_client c(ex, params());
    test::scripted_stream* s = nullptr;
    auto r = co_await open(c, ex, s, "AUTH=PLAIN SASL-IR");
    CHECK(r.ok());
    s->then_read(select_answer + "p2 OK selected\r\n")
        .then_read("p3 OK nothing of that UID\r\n")
        .then_read("p4 NO [CANNOT] not allowed\r\np5 OK noop\r\n");
    r = co_await c.async_select("INBOX", false);
    CHECK(r.ok());
    const imap_client::body_sink sink = [](const std::string&) -> asio::awaitable<bool> {
      co_return true;
    };
    bool found = true;
    r = co_await c.async_body(99, sink, found);
    CHECK(r.ok());
    CHECK_FALSE(found);
    c.move("10", "Archivio");
    r = co_await c.async_sync();
    CHECK(r.ok());
    CHECK(c.refusals() == 1);
    CHECK(c.moved() == 0);
  });
}

TEST_CASE("imap client: EOF inside a literal, a stall, a forged UID") {
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    imap_client c(ex, params());
    test::scripted_stream* s = nullptr;
    auto r = co_await open(c, ex, s, "AUTH=PLAIN SASL-IR");
    CHECK(r.ok());
    s->then_read(select_answer + "p2 OK selected\r\n")
        .then_read("* 1 FETCH (UID 10 BODY[] {100}\r\nSubject: cut\r\n\r\nhalf")
        .then_eof();
    r = co_await c.async_select("INBOX", false);
    CHECK(r.ok());
    std::string got;
    const imap_client::body_sink sink = [&got](const std::string& b) -> asio::awaitable<bool> {
      got += b;
      co_return true;
    };
    bool found = false;
    r = co_await c.async_body(10, sink, found);
    CHECK(r.kind == failure_kind::connection);
    CHECK(r.detail.find("inside a literal") == 0);
    CHECK(got.find("half") != std::string::npos);  // fetch aborts the delivery: not counted
    CHECK_FALSE(c.usable());
  });
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    imap_client c(ex, params());
    test::scripted_stream* s = nullptr;
    auto r = co_await open(c, ex, s, "AUTH=PLAIN SASL-IR");
    CHECK(r.ok());
    s->then_read(select_answer + "p2 OK selected\r\n")
        .then_read("* 1 FETCH (UID 10 BODY[] {100}\r\nSubject: slow\r\n")
        .then_stall();
    r = co_await c.async_select("INBOX", false);
    CHECK(r.ok());
    const imap_client::body_sink sink = [](const std::string&) -> asio::awaitable<bool> {
      co_return true;
    };
    bool found = false;
    r = co_await c.async_body(10, sink, found);
    CHECK(r.kind == failure_kind::timeout);
    CHECK(r.detail == "inside a literal: timed out");
  });
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    imap_client c(ex, params());
    test::scripted_stream* s = nullptr;
    auto r = co_await open(c, ex, s, "AUTH=PLAIN SASL-IR");
    CHECK(r.ok());
    // A body that says, after its octets, that it is another message.
    s->then_read(select_answer + "p2 OK selected\r\n")
        .then_read("* 1 FETCH (BODY[] {4}\r\nabcd UID 11)\r\np3 OK done\r\n");
    r = co_await c.async_select("INBOX", false);
    CHECK(r.ok());
    const imap_client::body_sink sink = [](const std::string&) -> asio::awaitable<bool> {
      co_return true;
    };
    bool found = true;
    r = co_await c.async_body(10, sink, found);
    CHECK(r.ok());
    CHECK_FALSE(found);  // not taken for message 10: the run leaves 10 for the next one
  });
}

TEST_CASE("imap client: logins as the capabilities say, and refusals") {
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    // No SASL-IR: AUTHENTICATE PLAIN waits for the continuation; capabilities asked after.
    imap_client c(ex, params());
    auto stream = std::make_unique<test::scripted_stream>(ex);
    auto* s = stream.get();
    s->then_read("* OK ready\r\n")
        .then_read("* CAPABILITY IMAP4rev1 AUTH=PLAIN ENABLE QRESYNC\r\np1 OK caps\r\n")
        .then_read("+ \r\n")
        .then_read("p2 OK in\r\n")
        .then_read("* CAPABILITY IMAP4rev1 ENABLE QRESYNC IDLE\r\np3 OK caps\r\n")
        .then_read("* ENABLED QRESYNC\r\np4 OK enabled\r\n");
    auto r = co_await c.async_open(std::make_unique<net::line_channel>(ex, std::move(stream)));
    CHECK(r.ok());
    CHECK(c.qresync());
    CHECK(c.capabilities().idle);
    CHECK(s->written() ==
          "p1 CAPABILITY\r\np2 AUTHENTICATE PLAIN\r\nAHVzZXIAcHc=\r\np3 CAPABILITY\r\n"
          "p4 ENABLE QRESYNC\r\n");
  });
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    // LOGIN only, a password that needs quoting; then the server refuses it.
    imap_client c(ex, params("p\"w d"));
    auto stream = std::make_unique<test::scripted_stream>(ex);
    auto* s = stream.get();
    s->then_read("* OK [CAPABILITY IMAP4rev1] ready\r\n")
        .then_read("p1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n");
    auto r = co_await c.async_open(std::make_unique<net::line_channel>(ex, std::move(stream)));
    CHECK(r.kind == failure_kind::auth);
    CHECK(r.server == "[AUTHENTICATIONFAILED] Authentication failed.");
    CHECK(r.detail == "LOGIN as user refused");
    CHECK(s->written() == "p1 LOGIN user \"p\\\"w d\"\r\n");
  });
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    // An 8-bit password with LOGIN only and no LITERAL+: refused before anything is sent.
    imap_client c(ex, params("caff\xc3\xa8"));
    auto stream = std::make_unique<test::scripted_stream>(ex);
    auto* s = stream.get();
    s->then_read("* OK [CAPABILITY IMAP4rev1] ready\r\n");
    auto r = co_await c.async_open(std::make_unique<net::line_channel>(ex, std::move(stream)));
    CHECK(r.kind == failure_kind::credentials);
    CHECK(s->written().empty());
  });
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    // LOGINDISABLED and no AUTH=PLAIN: no login is possible, and none is tried.
    imap_client c(ex, params());
    auto stream = std::make_unique<test::scripted_stream>(ex);
    auto* s = stream.get();
    s->then_read("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=GSSAPI] ready\r\n");
    auto r = co_await c.async_open(std::make_unique<net::line_channel>(ex, std::move(stream)));
    CHECK(r.kind == failure_kind::auth);
    CHECK(r.detail.find("offers no login postern speaks") != std::string::npos);
    CHECK(s->written().empty());
  });
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    imap_client c(ex, params());
    auto stream = std::make_unique<test::scripted_stream>(ex);
    auto* s = stream.get();
    s->then_read("* BYE too many connections\r\n");
    auto r = co_await c.async_open(std::make_unique<net::line_channel>(ex, std::move(stream)));
    CHECK(r.kind == failure_kind::rejected_permanent);
    CHECK(r.server == "too many connections");
  });
}

TEST_CASE("imap client: IDLE ends on new mail, or after its period with DONE") {
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    imap_client c(ex, params());
    test::scripted_stream* s = nullptr;
    auto r = co_await open(c, ex, s, "AUTH=PLAIN SASL-IR IDLE");
    CHECK(r.ok());
    s->then_read(select_answer + "p2 OK selected\r\n")
        .then_read("+ idling\r\n")
        .then_read("* 2 FETCH (FLAGS (\\Seen))\r\n")
        .then_read("* 3 EXISTS\r\n")
        .then_read("p3 OK IDLE done\r\n")
        .then_read("+ idling\r\n")
        .then_stall();
    r = co_await c.async_select("INBOX", false);
    CHECK(r.ok());
    bool new_mail = false;
    r = co_await c.async_idle(5s, new_mail);
    CHECK(r.ok());
    CHECK(new_mail);
    // The second IDLE hears nothing: its period ends it (and the stalled answer to DONE
    // then times out as any answer does).
    r = co_await c.async_idle(100ms, new_mail);
    CHECK_FALSE(new_mail);
    CHECK(r.kind == failure_kind::timeout);
    CHECK(s->written().find("p3 IDLE\r\nDONE\r\np4 IDLE\r\nDONE\r\n") != std::string::npos);
  });
}

TEST_CASE("imap client: pipelined bodies answered data first, OKs after (as Dovecot does)") {
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    imap_client c(ex, params());
    test::scripted_stream* s = nullptr;
    auto r = co_await open(c, ex, s, "AUTH=PLAIN SASL-IR UIDPLUS");
    CHECK(r.ok());
    s->then_read(select_answer + "p2 OK selected\r\n")
        .then_read(
            "* 1 FETCH (UID 10 BODY[] {3}\r\none)\r\n* 2 FETCH (UID 11 BODY[] {3}\r\ntwo)\r\n"
            "p3 OK done\r\np4 OK done\r\n")
        .then_read("p5 OK stored\r\np6 OK noop\r\n");
    r = co_await c.async_select("INBOX", false);
    CHECK(r.ok());
    c.request_body(10);
    c.request_body(11);
    std::string got;
    const imap_client::body_sink sink = [&got](const std::string& b) -> asio::awaitable<bool> {
      got += b;
      co_return true;
    };
    bool found = false;
    r = co_await c.async_body(10, sink, found);
    CHECK(r.ok());
    CHECK(found);
    CHECK(got == "one");  // done on its data, not held until its OK
    got.clear();
    r = co_await c.async_body(11, sink, found);
    CHECK(r.ok());
    CHECK(found);
    CHECK(got == "two");
    c.store("10:11", "\\Deleted");
    r = co_await c.async_sync();
    CHECK(r.ok());
    CHECK(c.refusals() == 0);
  });
}

TEST_CASE("imap client: with QRESYNC, VANISHED counts as expunges, so IDLE still sees new mail") {
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    imap_client c(ex, params());
    test::scripted_stream* s = nullptr;
    auto r = co_await open(c, ex, s, "AUTH=PLAIN SASL-IR IDLE");
    CHECK(r.ok());
    s->then_read(select_answer + "p2 OK selected\r\n")  // 2 messages
        .then_read("+ idling\r\n")
        .then_read("* VANISHED 10:11\r\n")  // both expunged by another client: none left
        .then_read("* 1 EXISTS\r\n")        // fewer than at the start, yet new
        .then_read("p3 OK IDLE done\r\n");
    r = co_await c.async_select("INBOX", false);
    CHECK(r.ok());
    bool new_mail = false;
    r = co_await c.async_idle(5s, new_mail);
    CHECK(r.ok());
    CHECK(new_mail);
    CHECK(c.folder().exists == 1);
  });
}

TEST_CASE("imap client: an IDLE longer than the message timeout still ends cleanly with DONE") {
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    imap_client c(ex, params());  // message_timeout 1s
    test::scripted_stream* s = nullptr;
    auto r = co_await open(c, ex, s, "AUTH=PLAIN SASL-IR IDLE");
    CHECK(r.ok());
    s->then_read(select_answer + "p2 OK selected\r\n").then_read("+ idling\r\n").then_stall();
    r = co_await c.async_select("INBOX", false);
    CHECK(r.ok());
    bool new_mail = true;
    // IDLE for 1.5s, past the 1s message timeout: DONE's answer still has its own time (here
    // none comes: the stall makes it time out as an answer, not at once).
    const auto start = std::chrono::steady_clock::now();
    r = co_await c.async_idle(1500ms, new_mail);
    const auto took = std::chrono::steady_clock::now() - start;
    CHECK_FALSE(new_mail);
    CHECK(r.kind == failure_kind::timeout);
    CHECK(took >= 1600ms);  // 1.5s of IDLE, then up to the 200ms reply timeout for DONE
    CHECK(s->written().find("DONE\r\n") != std::string::npos);
  });
}
