#pragma once
/// One client connection to the forwarder's SMTP server (RFC 5321 with PIPELINING, SIZE,
/// 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES and optional STARTTLS), from greeting to the
/// summary line.

#include <memory>
#include <string>

#include <asio/awaitable.hpp>

#include "client_limits.hpp"
#include "relay.hpp"
#include "tunnel/net/session_registry.hpp"

namespace postern::forwarder {

struct session_peer {
  std::string address;   ///< for logs: "192.0.2.1:53422" or "unix"
  std::string ip;        ///< what per-address limits count: "192.0.2.1", "2001:db8::1", "unix"
  bool allowed = false;  ///< inside `allow`: may relay without AUTH
  bool local = false;    ///< loopback or unix socket: AUTH may be offered without TLS
};

/// Runs a session on an accepted socket until the client quits, times out or goes away.
/// `ticket` holds its place in `limits`, which also counts its AUTH failures; it is one of
/// `sessions` (cut on the loop that runs it, when the shutdown's grace period ends).
asio::awaitable<void> run_smtp_session(std::shared_ptr<forwarder_runtime> rt, int fd,
                                       session_peer peer, std::shared_ptr<client_limits> limits,
                                       std::unique_ptr<client_limits::ticket> ticket,
                                       net::session_registry& sessions);

}  // namespace postern::forwarder
