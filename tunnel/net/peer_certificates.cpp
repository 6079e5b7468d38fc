#include "tunnel/net/peer_certificates.hpp"

#include <ctime>

#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "conf/units.hpp"
#include "tunnel/net/tls_context.hpp"

namespace postern::net {

namespace {

std::string name_text(X509_NAME* name) {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return {};
  const uint8_t* data = nullptr;
  size_t len = 0;
  BIO_mem_contents(bio.get(), &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

/// Seconds from now to `t` (negative when past).
long long seconds_until(const ASN1_TIME* t) {
  int days = 0, seconds = 0;
  if (!ASN1_TIME_diff(&days, &seconds, nullptr, t)) return 0;
  return static_cast<long long>(days) * 86400 + seconds;
}

}  // namespace

std::vector<certificate_info> peer_chain(SSL* ssl) {
  std::vector<certificate_info> out;
  const STACK_OF(X509)* chain = ssl ? SSL_get_peer_cert_chain(ssl) : nullptr;
  if (!chain) return out;
  for (size_t i = 0; i < sk_X509_num(chain); ++i) {
    X509* cert = sk_X509_value(chain, i);
    certificate_info c;
    c.subject = name_text(X509_get_subject_name(cert));
    c.issuer = name_text(X509_get_issuer_name(cert));
    c.not_before = conf::utc_minute(std::time(nullptr) + seconds_until(X509_get0_notBefore(cert)));
    c.seconds_left = seconds_until(X509_get0_notAfter(cert));
    c.not_after = conf::utc_minute(std::time(nullptr) + c.seconds_left);
    c.spki_sha256 = tls_context::spki_sha256(cert);
    out.push_back(std::move(c));
  }
  return out;
}

std::string alpn_selected(SSL* ssl) {
  const uint8_t* data = nullptr;
  unsigned len = 0;
  if (ssl) SSL_get0_alpn_selected(ssl, &data, &len);
  return data ? std::string(reinterpret_cast<const char*>(data), len) : std::string();
}

}  // namespace postern::net
