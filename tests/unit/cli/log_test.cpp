#include <catch2/catch.hpp>

#include <vector>

#include "cli/log.hpp"

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
