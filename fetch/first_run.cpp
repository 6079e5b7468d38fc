#include "first_run.hpp"

#include "forwarder/smtp/message_header.hpp"

#include <array>
#include <cctype>
#include <charconv>
#include <ctime>
#include <vector>

namespace postern::fetch {

namespace {

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool number(std::string_view text, int& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

std::vector<std::string_view> words(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t' || text[pos] == ',')) ++pos;
    std::size_t end = pos;
    while (end < text.size() && text[end] != ' ' && text[end] != '\t' && text[end] != ',') ++end;
    if (end > pos) out.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  return out;
}

std::optional<int> month_of(std::string_view name) {
  static constexpr std::array<std::string_view, 12> months = {
      "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
  if (name.size() < 3) return std::nullopt;
  std::string lower;
  for (char c : name.substr(0, 3))
    lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (std::size_t i = 0; i < months.size(); ++i)
    if (months[i] == lower) return static_cast<int>(i) + 1;
  return std::nullopt;
}

/// A zone as seconds east of UTC: "+0100", "-0500", or an obsolete name (RFC 5322 §4.3).
std::optional<int> zone_offset(std::string_view zone) {
  if (zone.size() == 5 && (zone[0] == '+' || zone[0] == '-')) {
    int hhmm = 0;
    if (!number(zone.substr(1), hhmm)) return std::nullopt;
    int seconds = (hhmm / 100) * 3600 + (hhmm % 100) * 60;
    return zone[0] == '-' ? -seconds : seconds;
  }
  struct named {
    std::string_view name;
    int hours;
  };
  static constexpr std::array<named, 10> names = {{{"UT", 0},
                                                   {"GMT", 0},
                                                   {"Z", 0},
                                                   {"EST", -5},
                                                   {"EDT", -4},
                                                   {"CST", -6},
                                                   {"CDT", -5},
                                                   {"MST", -7},
                                                   {"MDT", -6},
                                                   {"PST", -8}}};
  for (const auto& n : names)
    if (zone == n.name) return n.hours * 3600;
  return 0;  // other obsolete zones "SHOULD be considered equivalent to -0000"
}

}  // namespace

std::optional<first_run_choice> parse_first_run(std::string_view text, std::string& error) {
  first_run_choice c;
  if (text == "all") {
    c.what = first_run_choice::kind::all;
    return c;
  }
  if (text == "none") {
    c.what = first_run_choice::kind::none;
    return c;
  }
  int y = 0, m = 0, d = 0;
  if (text.starts_with("since:") && text.size() == 16 && text[10] == '-' && text[13] == '-' &&
      number(text.substr(6, 4), y) && number(text.substr(11, 2), m) &&
      number(text.substr(14, 2), d) && m >= 1 && m <= 12 && d >= 1 && d <= 31) {
    c.what = first_run_choice::kind::since;
    c.since = days_from_civil(y, static_cast<unsigned>(m), static_cast<unsigned>(d)) * 86400;
    return c;
  }
  error = "--first-run: expected all, none or since:YYYY-MM-DD, got \"" + std::string(text) + "\"";
  return std::nullopt;
}

std::optional<std::int64_t> parse_message_date(std::string_view text) {
  auto w = words(text);
  if (!w.empty() && !w[0].empty() && std::isalpha(static_cast<unsigned char>(w[0][0])))
    w.erase(w.begin());  // the day name
  if (w.size() < 4) return std::nullopt;
  int day = 0, year = 0;
  auto month = month_of(w[1]);
  if (!number(w[0], day) || !month || !number(w[2], year) || day < 1 || day > 31)
    return std::nullopt;
  if (w[2].size() == 2) year += year < 50 ? 2000 : 1900;  // obsolete two-digit years
  int hh = 0, mm = 0, ss = 0;
  std::string_view time = w[3];
  if (time.size() < 5 || time[2] != ':' || !number(time.substr(0, 2), hh) ||
      !number(time.substr(3, 2), mm))
    return std::nullopt;
  if (time.size() == 8 && (time[5] != ':' || !number(time.substr(6, 2), ss))) return std::nullopt;
  if (time.size() != 5 && time.size() != 8) return std::nullopt;
  auto zone = zone_offset(w.size() > 4 ? w[4] : "-0000");
  if (!zone) return std::nullopt;
  return days_from_civil(year, static_cast<unsigned>(*month), static_cast<unsigned>(day)) * 86400 +
         hh * 3600 + mm * 60 + ss - *zone;
}

std::optional<std::int64_t> header_date(const std::string& header) {
  const auto block = smtp::header_block::parse(header);
  if (const auto* date = block.find("Date")) return parse_message_date(date->value());
  return std::nullopt;
}

}  // namespace postern::fetch
