#pragma once
/// What to do with the mail a kept mailbox already holds when postern-fetch has no state for
/// it (a first setup, a new machine, a lost /var/lib/postern): deliver it all again, deliver
/// none of it (record it as seen), or deliver what arrived since a date. No choice is made
/// for the admin: years of PEC re-delivered into the mailboxes people read is the failure
/// getmail's users know.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace postern::fetch {

struct first_run_choice {
  enum class kind { ask, all, none, since };
  kind what = kind::ask;
  std::int64_t since = 0;  ///< unix time of 00:00 UTC of the date, for kind::since
};

/// Parses --first-run's value: "all", "none" or "since:YYYY-MM-DD"; nullopt + error.
std::optional<first_run_choice> parse_first_run(std::string_view text, std::string& error);

/// The time of an RFC 5322 date-time ("Mon, 23 Nov 2026 10:00:00 +0100", day name and
/// seconds optional, obsolete zone names UT/GMT/EST... accepted), or nullopt.
std::optional<std::int64_t> parse_message_date(std::string_view text);

/// The time of the Date: field of a header section, or nullopt.
std::optional<std::int64_t> header_date(const std::string& header);

}  // namespace postern::fetch
