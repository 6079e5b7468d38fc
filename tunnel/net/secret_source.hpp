#pragma once
/// Where a protocol client gets a login's password when (and only when) it logs in: an
/// inline password, a private file, or password_command, which runs as a supervised child
/// off the event loop under a deadline. The helper's stderr is capped, has the password
/// removed and goes to the log; its output never reaches an error message.

#include <functional>
#include <optional>
#include <string>

#include <asio/awaitable.hpp>

#include "conf/mailbox_registry.hpp"
#include "conf/secret.hpp"
#include "conf/units.hpp"

namespace postern::net {

/// Reads a password now; nullopt + an error naming the source (never the secret).
using password_source =
    std::function<asio::awaitable<std::optional<conf::secret>>(std::string& error)>;

/// The password source of a mailbox or pseudo-mailbox; `m` must outlive it.
/// `command_timeout` bounds a password_command run.
password_source password_of(const conf::mailbox& m, conf::duration command_timeout);

/// Runs password_command (argv, no shell) and takes the first line of its standard output.
/// The arguments are references: they must outlive the coroutine.
asio::awaitable<std::optional<conf::secret>> async_password_command(
    const std::vector<std::string>& argv, const std::string& owner, conf::duration timeout,
    std::string& error);

/// `text` with every occurrence of `secret` replaced by "<redacted>".
std::string redact(std::string text, const std::string& secret);

}  // namespace postern::net
