// relay_transaction over a scripted provider: what the client is told and what the audit
// file says when the provider resets the connection while the message goes up, the client
// goes away in the middle of it, the provider falls silent after the final dot, or refuses
// the message at its end. Nothing is acknowledged that the provider did not acknowledge, and
// no final dot leaves for a message that was not sent whole.
// No co_await inside CHECK() (ARCHITECTURE.md, the coroutine rule).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <fstream>
#include <sstream>

#include "../run_coroutine.hpp"
#include "../scripted_stream.hpp"
#include "forwarder/relay.hpp"
#include "scripted_provider.hpp"

using namespace postern;
using namespace std::chrono_literals;
using forwarder::message_source;
using test::run_coroutine;

namespace {

const std::string head = "From: a@pec.test\r\nTo: b@dest.test\r\nSubject: t\r\n\r\n";

/// The message as the client's DATA delivers it (transparency undone), in chunks; with
/// `fail_after`, the client is gone after that many chunks.
class memory_source : public message_source {
 public:
  explicit memory_source(std::vector<std::string> chunks, std::size_t fail_after = SIZE_MAX)
      : chunks_(std::move(chunks)), fail_after_(fail_after) {}
  asio::awaitable<status> read(std::string& out) override {
    if (next_ == fail_after_) co_return status::failed;
    if (next_ < chunks_.size()) out += chunks_[next_++];
    co_return next_ == chunks_.size() ? status::end : status::more;
  }
  [[nodiscard]] std::string error() const override { return "client closed during DATA"; }

 private:
  std::vector<std::string> chunks_;
  std::size_t fail_after_;
  std::size_t next_ = 0;
};

/// A runtime with one mailbox whose provider is scripted, and an audit file of its own.
struct relay_setup {
  forwarder::forwarder_runtime rt;
  test::scripted_provider provider;
  std::string audit_path;

  relay_setup(const asio::any_io_executor& ex, std::function<void(test::scripted_stream&)> make) {
    rt.config = test::config_with_mailbox();
    rt.config.match = conf::sender_match::envelope;
    rt.config.timeouts.final_reply = 300ms;
    rt.pool = std::make_unique<forwarder::upstream_pool>(ex, rt.config, false);
    provider.make = std::move(make);
    rt.pool->set_connector(provider.source(ex));
    char name[] = "/tmp/postern-relay-audit-XXXXXX";
    const int fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    ::close(fd);
    audit_path = name;
    std::string error;
    REQUIRE(rt.audit.open(audit_path, error));
  }
  ~relay_setup() {
    rt.pool->close_all();
    ::unlink(audit_path.c_str());
  }
  [[nodiscard]] std::string audit() const {
    std::ifstream in(audit_path);
    std::stringstream all;
    all << in.rdbuf();
    return all.str();
  }
  [[nodiscard]] const std::string& upstream_saw() const { return provider.last_seen->written; }
};

/// The provider's answers up to DATA's 354.
void takes_the_envelope(test::scripted_stream& s) {
  test::greets_and_logs_in(s);
  s.then_read("250 2.1.0 sender ok\r\n").then_read("250 2.1.5 rcpt ok\r\n").then_read("354 go\r\n");
}

/// MAIL and RCPT through `relay`; both must be accepted.
asio::awaitable<void> envelope(forwarder::relay_transaction& relay) {
  std::string error;
  auto from = smtp::parse_mail_path("FROM:<a@pec.test>", "FROM", &error);
  auto to = smtp::parse_mail_path("TO:<b@dest.test>", "TO", &error);
  REQUIRE(from);
  REQUIRE(to);
  smtp::reply r = co_await relay.mail(*from);
  REQUIRE(r.code == 250);
  r = co_await relay.rcpt(*to);
  REQUIRE(r.code == 250);
}

bool has_final_dot(const std::string& written) {
  return written.find("\r\n.\r\n") != std::string::npos;
}

/// What became of one message sent through a relay whose provider follows `script`.
struct relayed {
  std::optional<smtp::reply> answer;  ///< for the client; nullopt: nobody to answer
  std::string upstream;               ///< every byte the provider received
  bool upstream_closed = false;
  std::string audit;
};

/// Sends `source` through a new relay (MAIL and RCPT accepted); `before_data` may change the
/// provider's script once the envelope is through.
asio::awaitable<relayed> relay_one(asio::any_io_executor ex,
                                   std::function<void(test::scripted_stream&)> script,
                                   memory_source& source,
                                   std::function<void(test::scripted_stream&)> before_data) {
  relay_setup setup(ex, std::move(script));
  forwarder::relay_transaction relay(setup.rt, "s1", "127.0.0.1");
  co_await envelope(relay);
  if (before_data) before_data(*setup.provider.last);
  relayed out;
  out.answer = co_await relay.data(source);
  out.upstream = setup.upstream_saw();
  out.upstream_closed = setup.provider.last_seen->closed;
  out.audit = setup.audit();
  co_await relay.reset();
  co_return out;
}

}  // namespace

TEST_CASE("relay: the message goes up whole and the provider's own 250 comes back") {
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    memory_source source({head, "hello\r\n"});
    const relayed r = co_await relay_one(
        ex,
        [](test::scripted_stream& s) {
          takes_the_envelope(s);
          s.then_read("250 2.0.0 queued as X1\r\n");
        },
        source, nullptr);
    REQUIRE(r.answer);
    CHECK(r.answer->one_line() == "250 2.0.0 queued as X1");
    CHECK(r.upstream.ends_with("DATA\r\n" + head + "hello\r\n.\r\n"));
    CHECK(r.audit.find("\"outcome\":\"relayed\"") != std::string::npos);
  });
}

TEST_CASE("relay: a reset while the body goes up is a 4yz, with no final dot sent") {
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    memory_source source({head, std::string(200 * 1024, 'x') + "\r\n", "end\r\n"});
    const relayed r =
        co_await relay_one(ex, takes_the_envelope, source, [](test::scripted_stream& s) {
          // DATA's write, the 354's read, then the first
          // batch of the body: that one fails.
          s.fail_operation(s.operations() + 3);
        });
    REQUIRE(r.answer);
    CHECK(r.answer->transient());
    CHECK(r.answer->one_line().find("connection reset") != std::string::npos);
    CHECK_FALSE(has_final_dot(r.upstream));
    CHECK(r.upstream_closed);
    CHECK(r.audit.find("uncertain") == std::string::npos);  // no final dot went up
    CHECK(r.audit.find("\"outcome\":\"deferred\"") != std::string::npos);
  });
}

TEST_CASE("relay: the client gone in the middle of the message: nothing is completed upstream") {
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    memory_source source({head, "part one\r\n", "part two\r\n"}, 2);
    const relayed r = co_await relay_one(ex, takes_the_envelope, source, nullptr);
    CHECK_FALSE(r.answer);  // nobody to answer
    CHECK_FALSE(has_final_dot(r.upstream));
    CHECK(r.upstream_closed);  // dropped, never back in the pool
    CHECK(r.audit.find("\"outcome\":\"relayed\"") == std::string::npos);
  });
}

TEST_CASE("relay: silence after the final dot is a 4yz (a duplicate at worst, never a loss)") {
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    memory_source source({head, "hello\r\n"});
    const relayed r = co_await relay_one(
        ex,
        [](test::scripted_stream& s) {
          takes_the_envelope(s);
          s.then_stall();
        },
        source, nullptr);
    REQUIRE(r.answer);
    CHECK(r.answer->transient());
    CHECK(r.answer->one_line().find("timed out; no answer to the end of the message, which the "
                                    "upstream may have taken: try again later") !=
          std::string::npos);
    CHECK(has_final_dot(r.upstream));
    CHECK(r.audit.find("\"outcome\":\"deferred\"") != std::string::npos);
    CHECK(r.audit.find("\"outcome\":\"relayed\"") == std::string::npos);
    // The one deferral the provider may have taken all the same: receipts must not call it
    // pending or failed.
    CHECK(r.audit.find(",\"uncertain\":true}") != std::string::npos);
  });
}

TEST_CASE("relay: the provider's refusal at the end of data is passed on as it is") {
  run_coroutine([](asio::any_io_executor ex) -> asio::awaitable<void> {
    memory_source source({head, "hello\r\n"});
    const relayed r = co_await relay_one(
        ex,
        [](test::scripted_stream& s) {
          takes_the_envelope(s);
          s.then_read("554 5.7.1 message refused: virus found\r\n");
        },
        source, nullptr);
    REQUIRE(r.answer);
    CHECK(r.answer->one_line() == "554 5.7.1 message refused: virus found");
    CHECK(r.audit.find("\"outcome\":\"rejected\"") != std::string::npos);
    CHECK(r.audit.find("virus found") != std::string::npos);
  });
}
