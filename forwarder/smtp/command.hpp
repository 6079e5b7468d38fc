#pragma once
/// Client commands as the forwarder's SMTP server reads them (RFC 5321 §4.1), and the
/// MAIL/RCPT path arguments with their ESMTP parameters.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace postern::smtp {

struct command {
  std::string verb;  ///< upper case: "EHLO", "MAIL", ...
  std::string arg;   ///< everything after the first space
};

/// Splits a command line (without CRLF). nullopt for a line that is not a command at all
/// (empty, NUL or other control bytes).
std::optional<command> parse_command(std::string_view line);

struct esmtp_param {
  std::string keyword;  ///< upper case
  std::string value;    ///< "" when absent
};

struct mail_path {
  std::string address;  ///< without angle brackets; "" for the null sender <>
  std::vector<esmtp_param> params;

  [[nodiscard]] const esmtp_param* param(std::string_view keyword) const;
  /// "<address> KEY=VALUE ..." for the command sent upstream, with only the `keep` keywords.
  [[nodiscard]] std::string to_wire(const std::vector<std::string>& keep) const;
};

/// Parses "FROM:<a@b> SIZE=100" (prefix "FROM") or "TO:<a@b> NOTIFY=NEVER" (prefix "TO").
/// Returns nullopt with a reason for the client in `error`.
std::optional<mail_path> parse_mail_path(std::string_view arg, std::string_view prefix,
                                         std::string* error);

}  // namespace postern::smtp
