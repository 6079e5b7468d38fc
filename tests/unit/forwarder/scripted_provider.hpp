#pragma once
// A provider for the forwarder's unit tests: a configuration with one mailbox, and scripted
// connections handed to the upstream pool in place of sockets (upstream_pool::set_connector).
#include <functional>
#include <memory>
#include <string>

#include <catch2/catch.hpp>

#include "../scripted_stream.hpp"
#include "conf/forwarder_config.hpp"
#include "tunnel/net/line_channel.hpp"

namespace postern::test {

inline conf::forwarder_config config_with_mailbox() {
  conf::forwarder_config c;
  c.hostname = "fw.test";
  c.timeouts.reply = std::chrono::milliseconds(500);
  c.timeouts.upstream_idle = std::chrono::hours(1);
  conf::mailbox m;
  m.address = "a@pec.test";
  m.smtp = conf::parse_endpoint("smtp://127.0.0.1:2525");
  REQUIRE(m.smtp);
  m.allow_cleartext = true;
  m.login = "a@pec.test";
  m.inline_password = std::make_shared<conf::secret>("pw");
  c.registry.mailboxes.push_back(m);
  return c;
}

/// Hands out scripted connections, each with the script `make` writes; counts them.
struct scripted_provider {
  std::function<void(scripted_stream&)> make;
  int connections = 0;
  scripted_stream* last = nullptr;  ///< the latest connection, while it lives
  std::shared_ptr<const scripted_stream::record> last_seen;  ///< ... what its peer saw

  net::channel_source source(const asio::any_io_executor& ex) {
    return [this, ex](std::string&) -> asio::awaitable<std::unique_ptr<net::line_channel>> {
      ++connections;
      auto s = std::make_unique<scripted_stream>(ex);
      make(*s);
      last = s.get();
      last_seen = s->seen();
      co_return std::make_unique<net::line_channel>(ex, std::move(s));
    };
  }
};

/// Greeting, EHLO with AUTH PLAIN, the login accepted.
inline void greets_and_logs_in(scripted_stream& s) {
  s.then_read("220 provider\r\n")
      .then_read("250-provider\r\n250 AUTH PLAIN\r\n")
      .then_read("235 2.7.0 ok\r\n");
}

}  // namespace postern::test
