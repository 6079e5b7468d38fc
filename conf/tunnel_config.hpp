#pragma once
/// postern-tunnel configuration: `[[service]]` tables, each one listener and its targets.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "diagnostics.hpp"
#include "endpoint.hpp"
#include "units.hpp"

namespace postern::conf {

enum class tunnel_mode { client, server };
enum class failover_policy { priority, round_robin };
enum class verify_mode { full, none };
enum class proxy_version { none, v1, v2 };
enum class tls_version { tls1_2, tls1_3 };

/// TLS settings of one service. In client mode they describe the TLS connection to the
/// target; in server mode the TLS connection accepted from clients.
struct tls_settings {
  tls_version min_version = tls_version::tls1_2;
  std::string ciphers;            ///< TLS 1.2 cipher list; "" = library default
  std::vector<std::string> alpn;  ///< offered (client) or accepted (server), in preference order
  std::string cert_file;          ///< own certificate chain (server; client for mTLS)
  std::string key_file;           ///< its private key: must be private (mode 0600/0400)

  // client mode
  verify_mode verify = verify_mode::full;
  std::string ca_file;  ///< "" with ca_dir "" = the system store
  std::string ca_dir;
  std::string verify_host;              ///< "" = the target's host name
  std::optional<std::string> sni;       ///< unset = verify host; "" = send no SNI
  std::vector<std::string> pin_sha256;  ///< base64 SHA-256 of SubjectPublicKeyInfo
  bool session_resumption = true;

  // server mode
  std::string client_ca_file;
  bool require_client_cert = false;
  std::vector<std::string> allow_cn, allow_dns, allow_email, allow_uri;
  bool session_tickets = true;
};

/// Per-phase timeouts; each phase of a connection is bounded by exactly one of them.
struct tunnel_timeouts {
  duration connect{std::chrono::seconds(10)};       ///< TCP connect to one target
  duration handshake{std::chrono::seconds(15)};     ///< TLS handshake, STARTTLS, PROXY header
  duration idle{std::chrono::minutes(60)};          ///< no byte in either direction
  duration close_linger{std::chrono::seconds(30)};  ///< one direction closed, other still open
};

struct tunnel_service {
  std::string name;
  tunnel_mode mode = tunnel_mode::client;
  address accept;
  std::vector<address> connect;  ///< in priority order
  failover_policy failover = failover_policy::priority;
  app_protocol starttls = app_protocol::none;  ///< client mode: smtp, pop3 or imap
  std::string starttls_hostname;               ///< name for EHLO (default: "localhost")
  proxy_version proxy_send = proxy_version::none;
  bool proxy_accept = false;
  std::uint32_t max_connections = 1000;
  tunnel_timeouts timeouts;
  tls_settings tls;
  bool log_handshake_errors = false;  ///< scanner noise at info instead of debug
  bool allow_cleartext = false;       ///< accept a non-loopback plaintext side
};

struct tunnel_config {
  std::string file;
  unsigned threads = 0;  ///< 0 = one per core
  std::vector<tunnel_service> services;
};

/// Loads and validates a tunnel configuration; on any error returns nullopt with every
/// problem in `diags`.
std::optional<tunnel_config> load_tunnel_config(const std::string& file, diagnostics& diags);

/// Reads a service's TLS keys into `tls` (mode-specific checks come after).
class table_reader;
void read_tls_settings(table_reader& r, tls_settings& tls);

const char* to_string(tunnel_mode m);

}  // namespace postern::conf
