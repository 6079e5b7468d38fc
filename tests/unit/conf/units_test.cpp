#include <catch2/catch.hpp>

#include "conf/units.hpp"

using namespace postern::conf;
using namespace std::chrono_literals;

TEST_CASE("durations parse with every unit") {
  CHECK(parse_duration("250ms") == duration(250ms));
  CHECK(parse_duration("30s") == duration(30s));
  CHECK(parse_duration("5m") == duration(5min));
  CHECK(parse_duration("2h") == duration(2h));
  CHECK(parse_duration("30d") == duration(30 * 24h));
}

TEST_CASE("bad durations explain what is expected") {
  std::string error;
  CHECK_FALSE(parse_duration("30", &error));
  CHECK(error == "expected a duration such as \"30s\", \"5m\", \"2h\" or \"30d\", got \"30\"");
  CHECK_FALSE(parse_duration("5 minutes", &error));
  CHECK(error == "unknown duration unit \" minutes\" in \"5 minutes\" (use ms, s, m, h or d)");
  CHECK_FALSE(parse_duration("-5s", &error));
  CHECK_FALSE(parse_duration("99999999999999999999d", &error));
}

TEST_CASE("sizes use decimal and binary units") {
  CHECK(parse_size("512") == 512u);
  CHECK(parse_size("64KiB") == 65536u);
  CHECK(parse_size("30MB") == 30'000'000u);
  CHECK(parse_size("1GiB") == 1073741824u);
  std::string error;
  CHECK_FALSE(parse_size("10 MB", &error));
  CHECK(error == "unknown size unit \" MB\" in \"10 MB\" (use B, KB, MB, GB, KiB, MiB or GiB)");
}

TEST_CASE("durations format to their shortest exact spelling") {
  CHECK(format_duration(30s) == "30s");
  CHECK(format_duration(90s) == "90s");
  CHECK(format_duration(2h) == "2h");
  CHECK(format_duration(1500ms) == "1500ms");
}
