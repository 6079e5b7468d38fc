#pragma once
/// One client connection to the forwarder's SMTP server (RFC 5321 with PIPELINING, SIZE,
/// 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES and optional STARTTLS), from greeting to the
/// summary line.

#include <memory>
#include <string>

#include <asio/awaitable.hpp>

#include "relay.hpp"

namespace postern::forwarder {

struct session_peer {
  std::string address;   ///< for logs: "192.0.2.1:53422" or "unix"
  bool allowed = false;  ///< inside `allow`: may relay without AUTH
  bool local = false;    ///< loopback or unix socket: AUTH may be offered without TLS
};

/// Runs a session on an accepted socket until the client quits, times out or goes away.
asio::awaitable<void> run_smtp_session(std::shared_ptr<forwarder_runtime> rt, int fd,
                                       session_peer peer);

}  // namespace postern::forwarder
