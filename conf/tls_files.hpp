#pragma once
/// Checks of the TLS files a configuration names (certificates, keys, CA bundles), made
/// while loading, so that --check and every start report each problem at its key's position
/// and all at once, rather than at the first connection or in a second round.

#include <string>
#include <string_view>

namespace postern::conf {

class table_reader;

/// How long a certificate may have left before --check, `postern check` and every start warn.
inline constexpr int expiry_warning_days = 14;

/// A PEM certificate chain at `path`: readable, at least one certificate; warns when its first
/// certificate has expired or expires within expiry_warning_days (`served`: a server's own,
/// which clients refuse; else a client certificate, which servers refuse).
/// False (with the error reported at `key`) when unusable.
bool check_cert_file(table_reader& r, std::string_view key, const std::string& path, bool served);

/// A private key at `path`: private (see check_private_file), readable as PEM, and the key
/// of the first certificate of `cert_path` when that one is usable ("" = not checked).
void check_key_file(table_reader& r, std::string_view key, const std::string& path,
                    const std::string& cert_path);

/// A bundle of trusted CA certificates (PEM): at least one certificate; warns when the last
/// of them has expired or expires within expiry_warning_days.
void check_ca_file(table_reader& r, std::string_view key, const std::string& path);

/// A directory of hashed CA certificates.
void check_ca_dir(table_reader& r, std::string_view key, const std::string& path);

}  // namespace postern::conf
