#include "tunnel/net/secret_source.hpp"

#include <asio/this_coro.hpp>

#include <openssl/mem.h>

#include "cli/log.hpp"
#include "tunnel/net/child_process.hpp"

namespace postern::net {

namespace lg = postern::log;
using asio::awaitable;

namespace {
/// Enough of a helper's complaint to act on; more would only flood the log.
constexpr std::size_t max_stderr_logged = 1024;
}  // namespace

std::string redact(std::string text, const std::string& secret) {
  if (secret.empty()) return text;
  constexpr std::string_view mark = "<redacted>";
  for (auto pos = text.find(secret); pos != std::string::npos;
       pos = text.find(secret, pos + mark.size()))
    text.replace(pos, secret.size(), mark);
  return text;
}

awaitable<std::optional<conf::secret>> async_password_command(const std::vector<std::string>& argv,
                                                              const std::string& owner,
                                                              conf::duration timeout,
                                                              std::string& error) {
  if (argv.empty()) {
    error = "password_command is empty";
    co_return std::nullopt;
  }
  child_spec spec;
  spec.argv = argv;
  spec.timeout = timeout;
  spec.max_output = 4096;
  child_result r = co_await async_run_child(co_await asio::this_coro::executor, spec);
  conf::secret value(r.out.substr(0, r.out.find_first_of("\r\n")));
  OPENSSL_cleanse(r.out.data(), r.out.size());
  if (!r.err.empty()) {
    // A helper may print what it read; whatever it printed, the password does not go on.
    std::string text = redact(std::move(r.err), value.reveal());
    if (text.size() > max_stderr_logged) text.resize(max_stderr_logged);
    lg::warn("password_command.stderr",
             {{"owner", owner}, {"program", argv.front()}, {"stderr", text}});
  }
  if (!r.succeeded()) {
    error = "password_command " + argv.front() +
            (r.started ? " failed (" + r.describe(timeout) + ")" : ": " + r.describe(timeout));
    co_return std::nullopt;
  }
  if (value.empty()) {
    error = "password_command " + argv.front() + " printed no password on its first line";
    co_return std::nullopt;
  }
  co_return std::optional<conf::secret>(std::move(value));
}

password_source password_of(const conf::mailbox& m, conf::duration command_timeout) {
  return [&m, command_timeout](std::string& error) -> awaitable<std::optional<conf::secret>> {
    std::string problem;
    std::optional<conf::secret> s;
    if (m.inline_password)
      s.emplace(m.inline_password->reveal());
    else if (!m.password_file.empty())
      s = conf::read_password_file(m.password_file, &problem);
    else
      s = co_await async_password_command(m.password_command, m.address, command_timeout, problem);
    if (!s) error = "password of " + m.address + ": " + problem;
    co_return s;
  };
}

}  // namespace postern::net
