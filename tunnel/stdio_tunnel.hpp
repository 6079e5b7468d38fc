#pragma once
/// `postern-tunnel --stdio`: one TLS connection carried over stdin/stdout.

#include <string>
#include <vector>

#include "conf/tunnel_config.hpp"

namespace postern::tunnel {

struct stdio_options {
  std::string connect_url;  ///< tls://, smtps://, smtp+starttls://, pop3s://, ... URL
  conf::tls_settings tls;
  std::string verify = "full";
  std::string tls_min = "1.2";
  conf::tunnel_timeouts timeouts;
  std::string connect_timeout, handshake_timeout, idle_timeout;
  std::string starttls_hostname;
};

/// Builds the one-service configuration --stdio runs; errors are user-facing messages.
bool make_stdio_service(const stdio_options& opts, conf::tunnel_service& out,
                        std::vector<std::string>& errors);

/// Runs the tunnel on fds 0 and 1; returns the process exit code.
int run_stdio(const conf::tunnel_service& service);

}  // namespace postern::tunnel
