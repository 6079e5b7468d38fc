#pragma once
/// Network addresses and endpoint URLs. The URL scheme fixes the TLS mode, so the
/// implicit-TLS-vs-STARTTLS confusion (465 vs 587) cannot be written by mistake.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace postern::conf {

enum class address_kind { tcp, unix_path, systemd };

/// Where to listen or connect: host:port, [v6]:port, unix:/path or systemd:NAME.
struct address {
  address_kind kind = address_kind::tcp;
  std::string host;  ///< without brackets
  std::uint16_t port = 0;
  std::string path;  ///< unix socket path, or systemd socket name

  [[nodiscard]] std::string to_string() const;
  /// True for 127.0.0.0/8, ::1, "localhost" and unix sockets: traffic that never leaves the host.
  [[nodiscard]] bool is_local() const;
  bool operator==(const address&) const = default;
};

/// Parses an address. `systemd:NAME` is accepted only when `allow_systemd` (listen side).
std::optional<address> parse_address(std::string_view text, bool allow_systemd,
                                     std::string* error = nullptr);

enum class tls_mode { none, implicit, starttls };
enum class app_protocol { none, smtp, pop3, imap, lmtp };

const char* to_string(tls_mode m);
const char* to_string(app_protocol p);

/// A URL such as smtps://host:465, smtp+starttls://host:587, pop3s://host, lmtp:/run/lmtp,
/// tls://host:port (any protocol, implicit TLS) or tcp://host:port (cleartext).
struct endpoint {
  std::string scheme;
  tls_mode tls = tls_mode::none;
  app_protocol protocol = app_protocol::none;
  address addr;

  [[nodiscard]] std::string to_string() const;
};

/// Parses an endpoint URL; a missing port takes the scheme's well-known port.
std::optional<endpoint> parse_endpoint(std::string_view url, std::string* error = nullptr);

/// When the URL's port is the well-known port of the other TLS mode ("smtps://host:25",
/// "smtp+starttls://host:465"), what to write instead; "" when they agree. The classic mix-up
/// of 465 and 587 fails only at the first connection, as a timeout or a TLS error.
std::string port_scheme_advice(const endpoint& e);

}  // namespace postern::conf
