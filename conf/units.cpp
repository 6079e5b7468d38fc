#include "units.hpp"

#include <array>
#include <charconv>
#include <ctime>
#include <limits>
#include <utility>

namespace postern::conf {

namespace {

/// Splits "30s" into 30 and "s"; false when there is no leading number.
bool split_number(std::string_view text, std::uint64_t& number, std::string_view& unit) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec != std::errc{} || end == text.data()) return false;
  unit = text.substr(static_cast<size_t>(end - text.data()));
  return true;
}

void set_error(std::string* error, std::string text) {
  if (error) *error = std::move(text);
}

}  // namespace

std::optional<duration> parse_duration(std::string_view text, std::string* error) {
  static constexpr std::array<std::pair<std::string_view, std::uint64_t>, 5> units{
      {{"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}}};
  std::uint64_t number = 0;
  std::string_view unit;
  if (!split_number(text, number, unit) || unit.empty()) {
    set_error(error, "expected a duration such as \"30s\", \"5m\", \"2h\" or \"30d\", got \"" +
                         std::string(text) + "\"");
    return std::nullopt;
  }
  for (auto [name, factor] : units) {
    if (unit != name) continue;
    if (number > std::numeric_limits<std::int64_t>::max() / factor) {
      set_error(error, "duration \"" + std::string(text) + "\" is too large");
      return std::nullopt;
    }
    return duration(static_cast<std::int64_t>(number * factor));
  }
  set_error(error, "unknown duration unit \"" + std::string(unit) + "\" in \"" + std::string(text) +
                       "\" (use ms, s, m, h or d)");
  return std::nullopt;
}

std::optional<std::uint64_t> parse_size(std::string_view text, std::string* error) {
  static constexpr std::array<std::pair<std::string_view, std::uint64_t>, 8> units{
      {{"", 1},
       {"B", 1},
       {"KB", 1000},
       {"MB", 1000'000},
       {"GB", 1000'000'000},
       {"KiB", 1024},
       {"MiB", 1024 * 1024},
       {"GiB", 1024 * 1024 * 1024}}};
  std::uint64_t number = 0;
  std::string_view unit;
  if (!split_number(text, number, unit)) {
    set_error(error,
              "expected a size such as \"64KiB\" or \"30MB\", got \"" + std::string(text) + "\"");
    return std::nullopt;
  }
  for (auto [name, factor] : units) {
    if (unit != name) continue;
    if (number > std::numeric_limits<std::uint64_t>::max() / factor) {
      set_error(error, "size \"" + std::string(text) + "\" is too large");
      return std::nullopt;
    }
    return number * factor;
  }
  set_error(error, "unknown size unit \"" + std::string(unit) + "\" in \"" + std::string(text) +
                       "\" (use B, KB, MB, GB, KiB, MiB or GiB)");
  return std::nullopt;
}

std::string format_duration(duration d) {
  auto ms = d.count();
  static constexpr std::array<std::pair<const char*, std::int64_t>, 4> units{
      {{"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1000}}};
  for (auto [name, factor] : units)
    if (ms != 0 && ms % factor == 0) return std::to_string(ms / factor) + name;
  return std::to_string(ms) + "ms";
}

std::string utc_minute(std::int64_t unix_time) {
  const std::time_t t = static_cast<std::time_t>(unix_time);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M UTC", &tm);
  return text;
}

}  // namespace postern::conf
