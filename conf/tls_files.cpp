#include "tls_files.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "secret.hpp"
#include "table_reader.hpp"
#include "units.hpp"

namespace postern::conf {

namespace {

/// The certificates of a PEM file (nullptr when it cannot be opened: `error` says why).
bssl::UniquePtr<STACK_OF(X509)> read_certificates(const std::string& path, std::string& error) {
  bssl::UniquePtr<BIO> bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) {
    error = path + ": cannot read: " + std::strerror(errno);
    ERR_clear_error();
    return nullptr;
  }
  bssl::UniquePtr<STACK_OF(X509)> certs(sk_X509_new_null());
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr))
    sk_X509_push(certs.get(), cert);
  ERR_clear_error();  // the end of the file reads as an error
  return certs;
}

/// Seconds from now until the certificate's notAfter (negative once expired).
long long seconds_left(X509* cert) {
  int days = 0, seconds = 0;
  if (!ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(cert))) return 0;
  return static_cast<long long>(days) * 86400 + seconds;
}

/// Warns at `key` when `left` seconds is an expiry passed (saying what then fails) or within
/// expiry_warning_days (saying what to do).
void warn_expiry(table_reader& r, std::string_view key, const std::string& what, long long left,
                 const std::string& then, const std::string& fix) {
  const std::time_t end = std::time(nullptr) + left;
  if (left <= 0)
    r.warning(key, what + " expired on " + utc_minute(end) + "; " + then + ": " + fix);
  else if (left < expiry_warning_days * 86400LL)
    r.warning(key, what + " expires on " + utc_minute(end) + ", in " +
                       std::to_string((left + 86399) / 86400) + " days: " + fix);
}

}  // namespace

bool check_cert_file(table_reader& r, std::string_view key, const std::string& path, bool served) {
  std::string error;
  auto certs = read_certificates(path, error);
  if (!certs) {
    r.error(key, error);
    return false;
  }
  if (sk_X509_num(certs.get()) == 0) {
    r.error(key, path + ": no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)");
    return false;
  }
  warn_expiry(r, key, path + ": the certificate", seconds_left(sk_X509_value(certs.get(), 0)),
              served ? "clients will refuse it" : "servers that ask for it will refuse it",
              "renew it");
  return true;
}

void check_key_file(table_reader& r, std::string_view key, const std::string& path,
                    const std::string& cert_path) {
  if (auto problem = check_private_file(path); !problem.empty()) {
    r.error(key, problem);
    return;
  }
  bssl::UniquePtr<BIO> bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) {
    r.error(key, path + ": cannot read: " + std::strerror(errno));
    ERR_clear_error();
    return;
  }
  bssl::UniquePtr<EVP_PKEY> pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (!pkey) {
    r.error(key, path + ": no PEM private key in it (an encrypted key cannot be used)");
    return;
  }
  if (cert_path.empty()) return;
  std::string error;
  auto certs = read_certificates(cert_path, error);
  if (!certs || sk_X509_num(certs.get()) == 0) return;  // reported at the certificate's key
  if (!X509_check_private_key(sk_X509_value(certs.get(), 0), pkey.get()))
    r.error(key, path + " is not the key of the certificate in " + cert_path);
  ERR_clear_error();
}

void check_ca_file(table_reader& r, std::string_view key, const std::string& path) {
  std::string error;
  auto certs = read_certificates(path, error);
  if (!certs) {
    r.error(key, error);
    return;
  }
  const std::size_t n = sk_X509_num(certs.get());
  if (n == 0) {
    r.error(key, path + ": no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)");
    return;
  }
  // A bundle is dead when its last certificate is: nothing verifies against it any more.
  long long last = seconds_left(sk_X509_value(certs.get(), 0));
  for (std::size_t i = 1; i < n; ++i)
    last = std::max(last, seconds_left(sk_X509_value(certs.get(), i)));
  warn_expiry(r, key, path + (n == 1 ? ": its certificate" : ": the last of its certificates"),
              last, "nothing verifies against it", "replace it");
}

void check_ca_dir(table_reader& r, std::string_view key, const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    r.error(key, path + ": " + std::strerror(errno));
  else if (!S_ISDIR(st.st_mode))
    r.error(key, path + ": not a directory (a single bundle goes in ca_file)");
}

}  // namespace postern::conf
