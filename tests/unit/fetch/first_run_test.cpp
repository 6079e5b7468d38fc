#include <catch2/catch.hpp>

#include "fetch/first_run.hpp"

using namespace postern::fetch;

TEST_CASE("--first-run takes all, none or since:YYYY-MM-DD") {
  std::string error;
  CHECK(parse_first_run("all", error)->what == first_run_choice::kind::all);
  CHECK(parse_first_run("none", error)->what == first_run_choice::kind::none);
  auto since = parse_first_run("since:2026-11-23", error);
  REQUIRE(since);
  CHECK(since->what == first_run_choice::kind::since);
  CHECK(since->since == 1795392000);  // date -u -d 2026-11-23 +%s
  CHECK_FALSE(parse_first_run("since:2026-13-01", error));
  CHECK_FALSE(parse_first_run("some", error));
  CHECK(error == "--first-run: expected all, none or since:YYYY-MM-DD, got \"some\"");
}

TEST_CASE("message dates as RFC 5322 writes them, and the obsolete forms") {
  // Each against `date -u -d '...' +%s`.
  CHECK(parse_message_date("Mon, 23 Nov 2026 10:00:00 +0100") == 1795424400);
  CHECK(parse_message_date("23 Nov 2026 10:00 +0100") == 1795424400);
  CHECK(parse_message_date("Mon, 23 Nov 2026 09:00:00 GMT") == 1795424400);
  CHECK(parse_message_date("Mon, 23 Nov 26 04:00:00 -0500") == 1795424400);
  CHECK(parse_message_date("1 Jan 1970 00:00:00 +0000") == 0);
  CHECK_FALSE(parse_message_date("yesterday"));
  CHECK_FALSE(parse_message_date("Mon, 23 Foo 2026 10:00:00 +0100"));
  CHECK_FALSE(parse_message_date(""));
}
