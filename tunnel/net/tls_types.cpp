#include "tls_types.hpp"

#include <openssl/bio.h>
#include <openssl/ssl.h>

#ifndef OPENSSL_IS_BORINGSSL
#error "postern must be built against BoringSSL (android-libboringssl-dev), not OpenSSL"
#endif

namespace postern::net {

void tls_free::operator()(SSL* p) const { SSL_free(p); }
void tls_free::operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
void tls_free::operator()(SSL_SESSION* p) const { SSL_SESSION_free(p); }
void tls_free::operator()(BIO* p) const { BIO_free(p); }

}  // namespace postern::net
