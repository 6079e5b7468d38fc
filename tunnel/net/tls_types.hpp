#pragma once
/// BoringSSL's types as the rest of postern sees them: declared, never defined, so that no
/// header outside the net library includes a BoringSSL header (nghttp2's ssl_compat.h does
/// the same for its TLS library differences). Only the net library's .cpp files include
/// <openssl/...>; its headers use these names and the owning pointers below.

#include <memory>

// The same declarations as BoringSSL's <openssl/base.h>; repeating a typedef is allowed.
extern "C" {
typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_session_st SSL_SESSION;
typedef struct x509_st X509;
typedef struct x509_store_ctx_st X509_STORE_CTX;
typedef struct bio_st BIO;
typedef struct bio_method_st BIO_METHOD;
}

namespace postern::net {

/// Frees each BoringSSL object with its own free function.
struct tls_free {
  void operator()(SSL* p) const;
  void operator()(SSL_CTX* p) const;
  void operator()(SSL_SESSION* p) const;
  void operator()(BIO* p) const;
};

/// An owned BoringSSL object (what bssl::UniquePtr is inside the net library).
template <class T>
using tls_ptr = std::unique_ptr<T, tls_free>;

}  // namespace postern::net
