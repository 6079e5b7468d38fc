#pragma once
/// Human-written quantities in configuration files: durations and sizes.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace postern::conf {

using duration = std::chrono::milliseconds;

/// Parses "250ms", "30s", "5m", "2h", "30d"; nullopt on anything else. An error
/// text for the user is in `error` when given.
std::optional<duration> parse_duration(std::string_view text, std::string* error = nullptr);

/// Parses "512", "64KiB", "30MB", "1GiB" (B, KB/MB/GB = 1000^n, KiB/MiB/GiB = 1024^n).
std::optional<std::uint64_t> parse_size(std::string_view text, std::string* error = nullptr);

/// "30s", "5m", "1500ms": the shortest exact spelling, for logs and --check output.
std::string format_duration(duration d);

/// A point in time to the minute, as expiry dates are said: "2026-12-07 14:53 UTC".
std::string utc_minute(std::int64_t unix_time);

}  // namespace postern::conf
