#include "tunnel/net/tls_context.hpp"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <cstring>

#include <openssl/base64.h>
#include <openssl/digest.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

namespace postern::net {

namespace {

/// Index of the session-cache key (a heap std::string) stored on each client SSL.
int session_key_index() {
  static const int index = SSL_get_ex_new_index(
      0, nullptr, nullptr, nullptr, [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
        delete static_cast<std::string*>(ptr);
      });
  return index;
}

/// Index of the allow-list refusal text (a heap std::string) stored on a server SSL.
int refusal_index() {
  static const int index = SSL_get_ex_new_index(
      0, nullptr, nullptr, nullptr, [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
        delete static_cast<std::string*>(ptr);
      });
  return index;
}

/// When the first certificate of the peer's chain expires (the chain as the server sent it,
/// leaf first); far in the future when there is none.
std::chrono::system_clock::time_point chain_expiry(SSL* ssl) {
  auto earliest = std::chrono::system_clock::time_point::max();
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
  for (size_t i = 0; chain && i < sk_X509_num(chain); ++i) {
    int days = 0, seconds = 0;
    if (!ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(sk_X509_value(chain, i))))
      continue;
    auto expires = std::chrono::system_clock::now() + std::chrono::hours(24) * days +
                   std::chrono::seconds(seconds);
    earliest = std::min(earliest, expires);
  }
  return earliest;
}

int context_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

std::string last_ssl_error() {
  uint32_t code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown error";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

bool is_ip_literal(const std::string& host) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

constexpr std::size_t max_cached_sessions = 1024;

}  // namespace

tls_context::tls_context(const conf::tls_settings& settings, conf::tunnel_mode mode)
    : settings_(settings), mode_(mode), ctx_(SSL_CTX_new(TLS_method())) {}

tls_context::~tls_context() = default;

std::shared_ptr<tls_context> tls_context::create(const conf::tls_settings& settings,
                                                 conf::tunnel_mode mode, std::string& error) {
  std::shared_ptr<tls_context> c(new tls_context(settings, mode));
  if (!c->ctx_) {
    error = "cannot create TLS context: " + last_ssl_error();
    return nullptr;
  }
  SSL_CTX_set_ex_data(c->ctx_.get(), context_index(), c.get());
  bool ok = c->setup_common(error) &&
            (mode == conf::tunnel_mode::client ? c->setup_client(error) : c->setup_server(error));
  ERR_clear_error();
  return ok ? c : nullptr;
}

bool tls_context::setup_common(std::string& error) {
  SSL_CTX* ctx = ctx_.get();
  SSL_CTX_set_min_proto_version(
      ctx, settings_.min_version == conf::tls_version::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  // Partial writes let the relay hand over large buffers and learn how much went out;
  // a moving buffer lets it retry from its own copy after EAGAIN.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  const std::string& ciphers =
      settings_.ciphers.empty() ? default_tls12_ciphers : settings_.ciphers;
  if (!SSL_CTX_set_strict_cipher_list(ctx, ciphers.c_str())) {
    error = "ciphers: invalid cipher list \"" + ciphers + "\": " + last_ssl_error();
    return false;
  }
  for (const auto& p : settings_.alpn) {
    alpn_wire_ += static_cast<char>(p.size());
    alpn_wire_ += p;
  }
  if (!settings_.cert_file.empty()) {
    if (!SSL_CTX_use_certificate_chain_file(ctx, settings_.cert_file.c_str())) {
      error = "cert_file " + settings_.cert_file +
              ": cannot load the certificate chain: " + last_ssl_error();
      return false;
    }
    if (!SSL_CTX_use_PrivateKey_file(ctx, settings_.key_file.c_str(), SSL_FILETYPE_PEM)) {
      bool mismatch = ERR_GET_REASON(ERR_peek_error()) == X509_R_KEY_VALUES_MISMATCH;
      error = "key_file " + settings_.key_file +
              (mismatch ? " does not match cert_file " + settings_.cert_file
                        : ": cannot load the private key: " + last_ssl_error());
      ERR_clear_error();
      return false;
    }
    if (!SSL_CTX_check_private_key(ctx)) {
      error = "key_file " + settings_.key_file + " does not match cert_file " + settings_.cert_file;
      return false;
    }
  }
  return true;
}

bool tls_context::setup_client(std::string& error) {
  SSL_CTX* ctx = ctx_.get();
  if (settings_.verify == conf::verify_mode::full) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    const char* file = settings_.ca_file.empty() ? nullptr : settings_.ca_file.c_str();
    const char* dir = settings_.ca_dir.empty() ? nullptr : settings_.ca_dir.c_str();
    if (!file && !dir) {
      file = system_ca_file;
      dir = system_ca_dir;
    }
    if (!SSL_CTX_load_verify_locations(ctx, file, dir)) {
      error = std::string("cannot load CA certificates from ") + (file ? file : dir) + ": " +
              last_ssl_error() +
              (settings_.ca_file.empty() && settings_.ca_dir.empty()
                   ? " (install ca-certificates, or set ca_file)"
                   : "");
      return false;
    }
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  if (!alpn_wire_.empty() &&
      SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const uint8_t*>(alpn_wire_.data()),
                              alpn_wire_.size()) != 0) {
    error = "alpn: " + last_ssl_error();
    return false;
  }
  if (settings_.session_resumption) {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_sess_set_new_cb(ctx, &tls_context::on_new_session);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }
  return true;
}

bool tls_context::setup_server(std::string& error) {
  SSL_CTX* ctx = ctx_.get();
  static constexpr unsigned char id_context[] = "postern-tunnel";
  SSL_CTX_set_session_id_context(ctx, id_context, sizeof id_context - 1);
  if (!settings_.session_tickets) SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  if (!settings_.client_ca_file.empty()) {
    if (!SSL_CTX_load_verify_locations(ctx, settings_.client_ca_file.c_str(), nullptr)) {
      error = "client_ca_file " + settings_.client_ca_file + ": " + last_ssl_error();
      return false;
    }
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(settings_.client_ca_file.c_str()))
      SSL_CTX_set_client_CA_list(ctx, names);
    const bool lists = !settings_.allow_cn.empty() || !settings_.allow_dns.empty() ||
                       !settings_.allow_email.empty() || !settings_.allow_uri.empty();
    int mode = SSL_VERIFY_PEER;
    if (settings_.require_client_cert || lists) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, nullptr);
    // The allow-lists are checked inside the handshake, so a refused client gets an alert
    // rather than a finished handshake and then an end of stream.
    if (lists) SSL_CTX_set_cert_verify_callback(ctx, &tls_context::on_verify_client, this);
  }
  if (!alpn_wire_.empty()) SSL_CTX_set_alpn_select_cb(ctx, &tls_context::on_alpn_select, this);
  return true;
}

int tls_context::on_alpn_select(SSL*, const uint8_t** out, uint8_t* out_len, const uint8_t* in,
                                unsigned in_len, void* arg) {
  auto* self = static_cast<tls_context*>(arg);
  const auto& wire = self->alpn_wire_;
  // Server preference order: the first of ours that the client offers.
  for (size_t i = 0; i < wire.size(); i += 1 + static_cast<uint8_t>(wire[i])) {
    auto len = static_cast<uint8_t>(wire[i]);
    for (unsigned j = 0; j < in_len; j += 1u + in[j]) {
      if (in[j] == len && std::memcmp(in + j + 1, wire.data() + i + 1, len) == 0) {
        *out = in + j + 1;
        *out_len = len;
        return SSL_TLSEXT_ERR_OK;
      }
    }
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;  // RFC 7301 section 3.2: no_application_protocol
}

int tls_context::on_verify_client(X509_STORE_CTX* store, void* arg) {
  if (X509_verify_cert(store) != 1) return 0;  // the chain itself: reported by BoringSSL
  auto* self = static_cast<tls_context*>(arg);
  std::string identity;
  if (self->identity_allowed(X509_STORE_CTX_get0_cert(store), identity)) return 1;
  X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  if (ssl)
    SSL_set_ex_data(ssl, refusal_index(),
                    new std::string("client certificate " +
                                    (identity.empty() ? std::string("(no CN)") : identity) +
                                    " is not in allow_cn/allow_dns/allow_email/allow_uri"));
  return 0;
}

std::string tls_context::refusal(const SSL* ssl) {
  auto* text = static_cast<const std::string*>(SSL_get_ex_data(ssl, refusal_index()));
  return text ? *text : std::string();
}

int tls_context::on_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* key = static_cast<std::string*>(SSL_get_ex_data(ssl, session_key_index()));
  auto* self =
      static_cast<tls_context*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), context_index()));
  if (!key || !self) return 0;
  std::lock_guard lock(self->sessions_mutex_);
  if (self->sessions_.size() >= max_cached_sessions && !self->sessions_.contains(*key))
    self->sessions_.erase(self->sessions_.begin());
  auto& cached = self->sessions_[*key];
  cached.session.reset(session);
  cached.chain_expires = chain_expiry(ssl);
  return 1;  // we took the reference
}

tls_ptr<SSL> tls_context::new_client(const std::string& host, const std::string& session_key) {
  tls_ptr<SSL> ssl(SSL_new(ctx_.get()));
  if (!ssl) return ssl;
  SSL_set_connect_state(ssl.get());
  std::string sni =
      settings_.sni.value_or(settings_.verify_host.empty() ? host : settings_.verify_host);
  if (!sni.empty() && !is_ip_literal(sni)) SSL_set_tlsext_host_name(ssl.get(), sni.c_str());
  if (settings_.verify == conf::verify_mode::full) {
    const std::string& name = settings_.verify_host.empty() ? host : settings_.verify_host;
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
    if (is_ip_literal(name))
      X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
    else
      X509_VERIFY_PARAM_set1_host(param, name.data(), name.size());
  }
  if (settings_.session_resumption) {
    SSL_set_ex_data(ssl.get(), session_key_index(), new std::string(session_key));
    std::lock_guard lock(sessions_mutex_);
    if (auto it = sessions_.find(session_key); it != sessions_.end()) {
      // A resumed session is not verified again: once a certificate of the chain it was
      // verified with has expired, the next connection must make a full, verified handshake.
      if (std::chrono::system_clock::now() >= it->second.chain_expires)
        sessions_.erase(it);
      else
        SSL_set_session(ssl.get(), it->second.session.get());
    }
  }
  return ssl;
}

tls_ptr<SSL> tls_context::new_server() {
  tls_ptr<SSL> ssl(SSL_new(ctx_.get()));
  if (ssl) SSL_set_accept_state(ssl.get());
  return ssl;
}

handshake_failure explain_handshake_failure(int tls_reason, const std::string& error,
                                            long verify_result, const std::string& refusal,
                                            bool we_are_server) {
  const char* peer = we_are_server ? "the client" : "the server";
  if (!refusal.empty()) return {refusal, true};
  switch (tls_reason) {
    case SSL_R_NO_APPLICATION_PROTOCOL:
      return {std::string(peer) + " offers no protocol of alpn", true};
    case SSL_R_UNSUPPORTED_PROTOCOL:
      return {std::string(peer) + " offers no TLS version this side accepts (see tls_min)", true};
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_CIPHERS_AVAILABLE:
      return {std::string(peer) + " offers no cipher suite in common (see ciphers)", true};
    case SSL_R_NO_SHARED_GROUP:
      return {std::string(peer) + " offers no key exchange group in common", true};
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      return {"the client sent no certificate, and one is required", true};
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
      return {std::string(we_are_server ? "client " : "") + "certificate verification failed: " +
                  X509_verify_cert_error_string(verify_result),
              true};
    default: break;
  }
  if (tls_reason > SSL_AD_REASON_OFFSET)
    return {std::string(peer) + " ended the handshake with the alert \"" +
                SSL_alert_desc_string_long(tls_reason - SSL_AD_REASON_OFFSET) + "\"",
            true};
  return {error.empty() ? "TLS handshake failed" : error, false};
}

std::string tls_context::spki_sha256(X509* cert) {
  uint8_t* der = nullptr;
  int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
  if (len <= 0) return {};
  uint8_t digest[32];
  SHA256(der, static_cast<size_t>(len), digest);
  OPENSSL_free(der);
  char b64[64];
  size_t n = EVP_EncodeBlock(reinterpret_cast<uint8_t*>(b64), digest, sizeof digest);
  return std::string(b64, n);
}

namespace {

/// "CN=name" of a certificate's subject, or "".
std::string common_name(X509* cert) {
  char cn[256] = {0};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) <= 0)
    return {};
  return std::string("CN=") + cn;
}

bool matches_any(const std::vector<std::string>& allowed, const std::string& value) {
  for (const auto& a : allowed)
    if (a == value) return true;
  return false;
}

}  // namespace

bool tls_context::identity_allowed(X509* cert, std::string& identity) const {
  identity = common_name(cert);
  if (!identity.empty() && matches_any(settings_.allow_cn, identity.substr(3))) return true;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  bool allowed = false;
  for (size_t i = 0; names && i < sk_GENERAL_NAME_num(names) && !allowed; ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    const std::vector<std::string>* list = nullptr;
    if (name->type == GEN_DNS) list = &settings_.allow_dns;
    if (name->type == GEN_EMAIL) list = &settings_.allow_email;
    if (name->type == GEN_URI) list = &settings_.allow_uri;
    if (!list) continue;
    const ASN1_STRING* s = name->d.ia5;
    std::string value(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                      static_cast<size_t>(ASN1_STRING_length(s)));
    if (matches_any(*list, value)) {
      identity = value;
      allowed = true;
    }
  }
  GENERAL_NAMES_free(names);
  return allowed;
}

peer_verdict tls_context::check_peer(SSL* ssl) const {
  bssl::UniquePtr<X509> leaf(SSL_get_peer_certificate(ssl));
  return mode_ == conf::tunnel_mode::client ? check_server(ssl, leaf.get())
                                            : check_client(leaf.get());
}

peer_verdict tls_context::check_server(SSL* ssl, X509* leaf) const {
  const bool verified = SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE;
  peer_verdict v{true, verified ? "ok" : "none", {}, leaf ? common_name(leaf) : ""};
  if (settings_.pin_sha256.empty()) return v;
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
  for (size_t i = 0; chain && i < sk_X509_num(chain); ++i)
    if (matches_any(settings_.pin_sha256, spki_sha256(sk_X509_value(chain, i)))) {
      v.verify = verified ? "ok+pin" : "pin";
      return v;
    }
  return {false,
          "failed",
          "no certificate in the server's chain matches pin_sha256 (server key " +
              (leaf ? spki_sha256(leaf) : std::string("absent")) + ")",
          {}};
}

peer_verdict tls_context::check_client(X509* leaf) const {
  const bool lists = !settings_.allow_cn.empty() || !settings_.allow_dns.empty() ||
                     !settings_.allow_email.empty() || !settings_.allow_uri.empty();
  if (!leaf) {
    if (lists)
      return {false, "failed", "client sent no certificate but allow-lists are configured", {}};
    return {true, settings_.client_ca_file.empty() ? "none" : "no-client-cert", {}, {}};
  }
  std::string identity;
  if (lists && !identity_allowed(leaf, identity))
    return {false,
            "failed",
            "client certificate " + (identity.empty() ? std::string("(no CN)") : identity) +
                " is not in allow_cn/allow_dns/allow_email/allow_uri",
            {}};
  return {true, "ok", {}, identity.empty() ? common_name(leaf) : identity};
}

}  // namespace postern::net
