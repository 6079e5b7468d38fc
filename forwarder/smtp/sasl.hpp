#pragma once
/// SASL encodings for SMTP AUTH (RFC 4954): PLAIN (RFC 4616), LOGIN, CRAM-MD5 (RFC 2195).
/// Results hold credentials, so they are secrets: wiped when dropped, never logged.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conf/secret.hpp"

namespace postern::smtp {

std::string base64_encode(std::string_view data);
std::optional<std::string> base64_decode(std::string_view text);

enum class auth_mechanism { plain, login, cram_md5 };
const char* to_string(auth_mechanism m);

/// The mechanism to use among those the server offers: CRAM-MD5 never sends the
/// password, but PLAIN is preferred over TLS because some servers store only hashes
/// and fail CRAM-MD5 (its HMAC needs the cleartext); LOGIN last.
std::optional<auth_mechanism> choose_mechanism(const std::vector<std::string>& offered);

/// base64("\0login\0password") for "AUTH PLAIN <response>".
conf::secret plain_response(std::string_view login, const conf::secret& password);

/// The answer to a CRAM-MD5 challenge (base64 as sent by the server).
std::optional<conf::secret> cram_md5_response(std::string_view login, const conf::secret& password,
                                              std::string_view challenge_base64);

}  // namespace postern::smtp
