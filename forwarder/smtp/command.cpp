#include "forwarder/smtp/command.hpp"

#include <algorithm>
#include <cctype>

namespace postern::smtp {

namespace {

bool iequals_prefix(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() &&
         std::equal(prefix.begin(), prefix.end(), text.begin(), [](char a, char b) {
           return std::toupper(static_cast<unsigned char>(a)) ==
                  std::toupper(static_cast<unsigned char>(b));
         });
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

/// The address inside <...>: quoted local parts may hold '>' and spaces; source routes
/// ("<@a,@b:user@c>", RFC 5321 §4.1.2) are accepted and dropped.
std::optional<std::string> angle_address(std::string_view text, std::size_t& end,
                                         std::string* error) {
  if (text.empty() || text[0] != '<') {
    *error = "the address must be in angle brackets, e.g. <user@example.com>";
    return std::nullopt;
  }
  bool quoted = false;
  std::string out;
  for (std::size_t i = 1; i < text.size(); ++i) {
    char c = text[i];
    if (quoted && c == '\\' && i + 1 < text.size()) {
      out += c;
      out += text[++i];
      continue;
    }
    if (c == '"') quoted = !quoted;
    if (!quoted && c == '>') {
      end = i + 1;
      if (!out.empty() && out[0] == '@') {
        auto colon = out.find(':');
        if (colon == std::string::npos) break;
        out.erase(0, colon + 1);
      }
      return out;
    }
    if (static_cast<unsigned char>(c) < 0x20 || (!quoted && c == ' ')) break;
    out += c;
  }
  *error = "malformed address";
  return std::nullopt;
}

}  // namespace

std::optional<command> parse_command(std::string_view line) {
  if (line.empty()) return std::nullopt;
  for (char c : line)
    if (c == '\0' || c == '\r' || c == '\n') return std::nullopt;
  auto space = line.find(' ');
  command cmd;
  cmd.verb = upper(line.substr(0, space));
  if (space != std::string_view::npos) cmd.arg = line.substr(space + 1);
  if (cmd.verb.empty() ||
      !std::all_of(cmd.verb.begin(), cmd.verb.end(), [](char c) { return std::isalpha(c); }))
    return std::nullopt;
  return cmd;
}

const esmtp_param* mail_path::param(std::string_view keyword) const {
  for (const auto& p : params)
    if (p.keyword == keyword) return &p;
  return nullptr;
}

std::string mail_path::to_wire(const std::vector<std::string>& keep) const {
  std::string out = "<" + address + ">";
  for (const auto& p : params) {
    if (std::find(keep.begin(), keep.end(), p.keyword) == keep.end()) continue;
    out += " " + p.keyword;
    if (!p.value.empty()) out += "=" + p.value;
  }
  return out;
}

std::optional<mail_path> parse_mail_path(std::string_view arg, std::string_view prefix,
                                         std::string* error) {
  std::string want = std::string(prefix) + ":";
  if (!iequals_prefix(arg, want)) {
    *error =
        "syntax: " + std::string(prefix == "FROM" ? "MAIL FROM:<address>" : "RCPT TO:<address>");
    return std::nullopt;
  }
  arg.remove_prefix(want.size());
  // Some clients write "MAIL FROM: <a@b>"; RFC 5321 does not allow the space, but refusing
  // it helps nobody.
  while (!arg.empty() && arg.front() == ' ') arg.remove_prefix(1);
  mail_path path;
  std::size_t end = 0;
  auto address = angle_address(arg, end, error);
  if (!address) return std::nullopt;
  path.address = *address;
  if (path.address.empty() && prefix == "TO") {
    *error = "empty recipient address";
    return std::nullopt;
  }
  arg.remove_prefix(end);
  while (!arg.empty()) {
    if (arg.front() != ' ') {
      *error = "parameters must be separated from the address by a space";
      return std::nullopt;
    }
    arg.remove_prefix(1);
    auto word = arg.substr(0, arg.find(' '));
    arg.remove_prefix(word.size());
    if (word.empty()) continue;
    auto eq = word.find('=');
    esmtp_param p{upper(word.substr(0, eq)),
                  eq == std::string_view::npos ? "" : std::string(word.substr(eq + 1))};
    if (p.keyword.empty() || !std::all_of(p.keyword.begin(), p.keyword.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '-';
        })) {
      *error = "malformed parameter \"" + std::string(word) + "\"";
      return std::nullopt;
    }
    path.params.push_back(std::move(p));
  }
  return path;
}

}  // namespace postern::smtp
