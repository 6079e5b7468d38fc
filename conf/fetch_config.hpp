#pragma once
/// postern-fetch configuration (`fetch.toml`) plus the mailbox registry it names.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "diagnostics.hpp"
#include "mailbox_registry.hpp"
#include "units.hpp"

namespace postern::conf {

enum class target_kind { smtp, lmtp, exec, maildir, stdout_mbox };

/// Where retrieved mail goes: smtp://, smtps://, smtp+starttls://, lmtp://, lmtp:/path,
/// exec:ARGV..., maildir:/path, or "-" (stdout, mboxrd).
struct delivery_target {
  target_kind kind = target_kind::smtp;
  std::optional<endpoint> url;    ///< smtp/lmtp
  std::vector<std::string> argv;  ///< exec, with {sender} {recipient} {mailbox} placeholders
  std::string path;               ///< maildir
  [[nodiscard]] std::string to_string() const;
};

/// Parses a target; `argv` is used for exec targets given as an array.
std::optional<delivery_target> parse_target(const std::string& text, std::string* error);

enum class oversize_action { skip, deliver };

struct fetch_timeouts {
  duration connect{std::chrono::seconds(30)};
  duration handshake{std::chrono::seconds(30)};
  duration command{std::chrono::minutes(2)};   ///< any POP3 reply, and delivery replies
  duration retrieve{std::chrono::minutes(5)};  ///< silence allowed while a message comes in
  duration message{std::chrono::minutes(30)};  ///< a whole message (RETR) or listing
  duration deliver{std::chrono::minutes(10)};  ///< a delivery's final answer (exec exit)
  duration password_command{std::chrono::seconds(10)};  ///< a password_command run, whole
  /// --daemon: an IMAP IDLE before it is renewed; RFC 2177 asks for at most 29 minutes.
  duration idle{std::chrono::minutes(25)};
};

struct fetch_config {
  std::string file;
  std::string mailboxes_file;
  mailbox_registry registry;
  std::optional<delivery_target> deliver;  ///< default target; mailboxes may override
  /// [delivery]: AUTH and TLS for smtp/lmtp targets, as a pseudo-mailbox (login, password
  /// source, tls); no login = no AUTH.
  mailbox delivery;
  std::string state_dir = "/var/lib/postern/fetch";
  duration interval{std::chrono::minutes(5)};  ///< --daemon
  std::optional<bool> keep;                    ///< unset: true for PEC mailboxes, else false
  std::optional<duration> delete_after;        ///< with keep: delete delivered mail this old
  std::uint64_t max_message_size = 0;          ///< 0 = no limit
  oversize_action oversize = oversize_action::skip;
  std::uint32_t max_messages_per_run = 0;  ///< 0 = all
  std::uint32_t concurrency = 2;
  fetch_timeouts timeouts;
  std::string audit_file;

  /// Where a mailbox's mail goes: its own `deliver`, else the default (validated at load).
  [[nodiscard]] std::optional<delivery_target> target_for(const mailbox& m) const {
    return m.deliver.empty() ? deliver : parse_target(m.deliver, nullptr);
  }
};

std::optional<fetch_config> load_fetch_config(const std::string& file, diagnostics& diags);

}  // namespace postern::conf
