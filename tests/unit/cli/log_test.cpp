#include <catch2/catch.hpp>

#include <vector>

#include "cli/log.hpp"
#include "cli/supervise.hpp"

#include <stdexcept>

using namespace postern::log;

namespace {
struct captured {
  std::vector<std::string> lines;
  captured() {
    auto& lg = logger::instance();
    lg.set_timestamps(false);
    lg.set_level(level::debug);
    lg.set_sink([this](std::string_view l) { lines.emplace_back(l); });
  }
  ~captured() {
    auto& lg = logger::instance();
    lg.set_sink(nullptr);
    lg.set_format(format::text);
    lg.set_level(level::info);
  }
};
}  // namespace

TEST_CASE("text lines are key=value with quoting where needed") {
  captured c;
  info("conn.end", {{"session", "s1"}, {"reason", "peer said \"no\""}, {"bytes", 42}});
  REQUIRE(c.lines.size() == 1);
  CHECK(c.lines[0] ==
        "level=info event=conn.end session=s1 reason=\"peer said \\\"no\\\"\" bytes=42\n");
}

TEST_CASE("json lines escape control characters") {
  captured c;
  logger::instance().set_format(format::json);
  warn("x", {{"text", "a\nb"}});
  REQUIRE(c.lines.size() == 1);
  CHECK(c.lines[0] == "{\"level\":\"warn\",\"event\":\"x\",\"text\":\"a\\nb\"}\n");
}

TEST_CASE("levels below the threshold are dropped") {
  captured c;
  logger::instance().set_level(level::warn);
  info("hidden", {});
  error("shown", {});
  REQUIRE(c.lines.size() == 1);
  CHECK(c.lines[0] == "level=error event=shown\n");
}

TEST_CASE("protocol lines carrying credentials are redacted") {
  CHECK(redact_protocol_line("AUTH PLAIN AGFsaWNlAHNlY3JldA==") == "AUTH <redacted>");
  CHECK(redact_protocol_line("PASS hunter2") == "PASS <redacted>");
  CHECK(redact_protocol_line("a1 LOGIN alice hunter2") == "a1 LOGIN <redacted>");
  CHECK(redact_protocol_line("EHLO example.org") == "EHLO example.org");
}

TEST_CASE("session ids are distinct") {
  CHECK(new_session_id() != new_session_id());
  CHECK(new_session_id().size() == 9);
}

TEST_CASE("json lines keep numbers as numbers") {
  captured c;
  logger::instance().set_format(format::json);
  info("conn.end", {{"bytes", 42}, {"ms", std::int64_t{-3}}, {"peer", "1.2.3.4"}});
  REQUIRE(c.lines.size() == 1);
  CHECK(c.lines[0] ==
        "{\"level\":\"info\",\"event\":\"conn.end\",\"bytes\":42,\"ms\":-3,"
        "\"peer\":\"1.2.3.4\"}\n");
}

TEST_CASE("bytes that are not UTF-8 never reach a line raw") {
  captured c;
  logger::instance().set_format(format::json);
  // Valid UTF-8 passes (é, €, U+1F600); a lone continuation byte, an overlong "/", a
  // surrogate and a truncated sequence each become U+FFFD.
  info("x", {{"helo", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
             {"bad",
              "a\x80"
              "b\xc0\xaf"
              "c\xed\xa0\x80"
              "d\xe2\x82"}});
  REQUIRE(c.lines.size() == 1);
  CHECK(c.lines[0] ==
        "{\"level\":\"info\",\"event\":\"x\",\"helo\":\"caf\xc3\xa9 \xe2\x82\xac "
        "\xf0\x9f\x98\x80\",\"bad\":\"a\\ufffdb\\ufffd\\ufffdc\\ufffd\\ufffd\\ufffd"
        "d\\ufffd\\ufffd\"}\n");
  logger::instance().set_format(format::text);
  info("y", {{"helo", "\xff"}});
  CHECK(c.lines[1] == "level=info event=y helo=\"\\ufffd\"\n");
}

TEST_CASE("an exception escaping a supervised coroutine is logged, then handled") {
  captured c;
  std::string handled;
  postern::cli::supervised handler{"conn.crashed", "s1",
                                   [&](const std::string& w) { handled = w; }};
  handler(nullptr);
  CHECK(c.lines.empty());
  handler(std::make_exception_ptr(std::runtime_error("bad state")));
  REQUIRE(c.lines.size() == 1);
  CHECK(c.lines[0] == "level=error event=conn.crashed session=s1 error=\"bad state\"\n");
  CHECK(handled == "bad state");
}
