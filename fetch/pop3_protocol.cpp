#include "pop3_protocol.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <sstream>

namespace postern::fetch {

namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

/// "N rest": the message number and what follows the single space.
std::optional<std::pair<std::uint32_t, std::string_view>> numbered(std::string_view line,
                                                                   std::string* error) {
  std::uint32_t number = 0;
  auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), number);
  if (ec != std::errc() || number == 0 || end == line.data() + line.size() || *end != ' ') {
    if (error) *error = "malformed listing line \"" + std::string(line.substr(0, 80)) + "\"";
    return std::nullopt;
  }
  return std::pair{number, line.substr(static_cast<std::size_t>(end - line.data()) + 1)};
}

}  // namespace

std::optional<pop3_status> parse_status(std::string_view line) {
  auto text_after = [&](std::size_t n) {
    std::string_view rest = line.substr(n);
    if (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    return std::string(rest);
  };
  if (line.starts_with("+OK")) return pop3_status{true, text_after(3)};
  if (line.starts_with("-ERR")) return pop3_status{false, text_after(4)};
  return std::nullopt;
}

pop3_capabilities parse_capa(const std::vector<std::string>& lines) {
  pop3_capabilities caps;
  for (const auto& line : lines) {
    std::istringstream words(line);
    std::string tag;
    words >> tag;
    tag = upper(tag);
    if (tag == "UIDL")
      caps.uidl = true;
    else if (tag == "PIPELINING")
      caps.pipelining = true;
    else if (tag == "STLS")
      caps.stls = true;
    else if (tag == "USER")
      caps.user = true;
    else if (tag == "TOP")
      caps.top = true;
    else if (tag == "SASL")
      for (std::string m; words >> m;) caps.sasl.push_back(upper(m));
  }
  return caps;
}

void uid_listing::add(std::uint32_t number, std::string_view uid) {
  entries_.push_back(
      {number, static_cast<std::uint32_t>(arena_.size()), static_cast<std::uint8_t>(uid.size())});
  arena_ += uid;
}

std::optional<std::uint64_t> size_listing::of(std::uint32_t number) const {
  // Servers list in ascending order, usually 1..N: try the direct place first.
  if (number >= 1 && number <= entries_.size() && entries_[number - 1].number == number)
    return entries_[number - 1].size;
  auto it = std::lower_bound(entries_.begin(), entries_.end(), number,
                             [](const entry& e, std::uint32_t n) { return e.number < n; });
  if (it == entries_.end() || it->number != number) return std::nullopt;
  return it->size;
}

std::optional<listing_entry> parse_uidl_line(std::string_view line, std::string* error) {
  auto parts = numbered(line, error);
  if (!parts) return std::nullopt;
  std::string_view uid = parts->second;
  // RFC 1939 §7: 1 to 70 characters in the range 0x21 to 0x7E.
  if (uid.empty() || uid.size() > 70 ||
      !std::all_of(uid.begin(), uid.end(), [](char c) { return c >= 0x21 && c <= 0x7e; })) {
    if (error) *error = "malformed unique id in \"" + std::string(line.substr(0, 80)) + "\"";
    return std::nullopt;
  }
  return listing_entry{parts->first, std::string(uid), 0};
}

std::optional<listing_entry> parse_list_line(std::string_view line, std::string* error) {
  auto parts = numbered(line, error);
  if (!parts) return std::nullopt;
  std::uint64_t size = 0;
  std::string_view rest = parts->second;
  auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), size);
  // Some servers append more after the size (RFC 1939 allows it); the number must be there.
  if (ec != std::errc() || (end != rest.data() + rest.size() && *end != ' ')) {
    if (error) *error = "malformed size in \"" + std::string(line.substr(0, 80)) + "\"";
    return std::nullopt;
  }
  return listing_entry{parts->first, {}, size};
}

}  // namespace postern::fetch
