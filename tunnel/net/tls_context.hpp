#pragma once
/// TLS configuration built once per service (and again on reload): BoringSSL contexts,
/// verification policy, client session cache, post-handshake identity checks.

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "tls_types.hpp"

#include "conf/tunnel_config.hpp"

namespace postern::net {

/// Outcome of verifying the peer, for the connection's summary line.
struct peer_verdict {
  bool ok = false;
  std::string verify;    ///< "ok", "ok+pin", "pin", "none" (by configuration), "failed"
  std::string reason;    ///< why it failed
  std::string identity;  ///< who the peer is: the allow-list entry it matched, or CN=...
};

/// Why a handshake failed, in words for the summary line, and whether it refused a real TLS
/// client (a wrong ALPN, an old TLS version, a missing or refused certificate, an alert)
/// rather than a scanner or health check that never spoke TLS.
struct handshake_failure {
  std::string reason;
  bool real_client = false;
};
/// `tls_reason` and `error` from the failed step (io_result), `verify_result` from
/// SSL_get_verify_result, `refusal` from tls_context::refusal.
handshake_failure explain_handshake_failure(int tls_reason, const std::string& error,
                                            long verify_result, const std::string& refusal,
                                            bool we_are_server);

/// The TLS 1.2 cipher suites used when `ciphers` is not set: ECDHE key exchange (forward
/// secrecy) with AEAD ciphers only; no static RSA, no CBC, no SHA-1 MACs. TLS 1.3 has its own,
/// all AEAD.
inline constexpr const char* default_tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/// The trust store used when no ca_file/ca_dir is set (Debian's ca-certificates).
inline constexpr const char* system_ca_file = "/etc/ssl/certs/ca-certificates.crt";
inline constexpr const char* system_ca_dir = "/etc/ssl/certs";

class tls_context {
 public:
  /// Builds the context; on failure returns null and a message naming the file and problem.
  static std::shared_ptr<tls_context> create(const conf::tls_settings& settings,
                                             conf::tunnel_mode mode, std::string& error);
  ~tls_context();

  /// A client-side SSL for one connection to `host` (the verified name and SNI unless
  /// verify_host/sni say otherwise); `session_key` selects the session to resume ("host:port").
  tls_ptr<SSL> new_client(const std::string& host, const std::string& session_key);
  /// A server-side SSL for one accepted connection.
  tls_ptr<SSL> new_server();

  /// After a successful handshake: pins and identity allow-lists, with the verdict to log.
  peer_verdict check_peer(SSL* ssl) const;

  [[nodiscard]] const conf::tls_settings& settings() const { return settings_; }
  [[nodiscard]] SSL_CTX* native() const { return ctx_.get(); }

  /// SHA-256 of the certificate's SubjectPublicKeyInfo, base64: the pin_sha256 format.
  static std::string spki_sha256(X509* cert);
  /// Why the allow-lists refused this connection's client certificate, "" if they did not.
  static std::string refusal(const SSL* ssl);

 private:
  tls_context(const conf::tls_settings& settings, conf::tunnel_mode mode);
  bool setup_common(std::string& error);
  bool setup_client(std::string& error);
  bool setup_server(std::string& error);
  static int on_new_session(SSL* ssl, SSL_SESSION* session);
  static int on_verify_client(X509_STORE_CTX* store, void* arg);
  static int on_alpn_select(SSL* ssl, const uint8_t** out, uint8_t* out_len, const uint8_t* in,
                            unsigned in_len, void* arg);
  bool identity_allowed(X509* cert, std::string& identity) const;
  peer_verdict check_server(SSL* ssl, X509* leaf) const;  ///< client mode: pins
  peer_verdict check_client(X509* leaf) const;            ///< server mode: allow-lists

  conf::tls_settings settings_;
  conf::tunnel_mode mode_;
  tls_ptr<SSL_CTX> ctx_;
  std::string alpn_wire_;

  /// A session to resume, and when the earliest certificate of the chain it was verified
  /// with expires: past that, it must not be resumed (resumption skips verification).
  struct cached_session {
    tls_ptr<SSL_SESSION> session;
    std::chrono::system_clock::time_point chain_expires;
  };
  mutable std::mutex sessions_mutex_;
  std::unordered_map<std::string, cached_session> sessions_;
};

}  // namespace postern::net
