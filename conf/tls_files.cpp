#include "tls_files.hpp"

#include <sys/stat.h>

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

std::string utc_date(std::time_t t) {
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M UTC", &tm);
  return text;
}

/// Seconds from now until the certificate's notAfter (negative once expired).
long long seconds_left(X509* cert) {
  int days = 0, seconds = 0;
  if (!ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(cert))) return 0;
  return static_cast<long long>(days) * 86400 + seconds;
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
  if (served) {
    X509* leaf = sk_X509_value(certs.get(), 0);
    const long long left = seconds_left(leaf);
    const std::time_t end = std::time(nullptr) + left;
    if (left <= 0)
      r.warning(key, path + ": the certificate expired on " + utc_date(end) +
                         "; clients will refuse it: renew it");
    else if (left < expiry_warning_days * 86400LL)
      r.warning(key, path + ": the certificate expires on " + utc_date(end) + ", in " +
                         std::to_string((left + 86399) / 86400) + " days: renew it");
  }
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
  if (!certs)
    r.error(key, error);
  else if (sk_X509_num(certs.get()) == 0)
    r.error(key, path + ": no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)");
}

void check_ca_dir(table_reader& r, std::string_view key, const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    r.error(key, path + ": " + std::strerror(errno));
  else if (!S_ISDIR(st.st_mode))
    r.error(key, path + ": not a directory (a single bundle goes in ca_file)");
}

}  // namespace postern::conf
