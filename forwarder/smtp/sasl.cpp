#include "forwarder/smtp/sasl.hpp"

#include <algorithm>

#include <openssl/base64.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>

namespace postern::smtp {

std::string base64_encode(std::string_view data) {
  size_t len = 0;
  EVP_EncodedLength(&len, data.size());
  std::string out(len, '\0');
  len = EVP_EncodeBlock(reinterpret_cast<uint8_t*>(out.data()),
                        reinterpret_cast<const uint8_t*>(data.data()), data.size());
  out.resize(len);
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  size_t len = 0;
  if (!EVP_DecodedLength(&len, text.size())) return std::nullopt;
  std::string out(len, '\0');
  if (!EVP_DecodeBase64(reinterpret_cast<uint8_t*>(out.data()), &len, out.size(),
                        reinterpret_cast<const uint8_t*>(text.data()), text.size()))
    return std::nullopt;
  out.resize(len);
  return out;
}

const char* to_string(auth_mechanism m) {
  switch (m) {
    case auth_mechanism::plain: return "PLAIN";
    case auth_mechanism::login: return "LOGIN";
    case auth_mechanism::cram_md5: return "CRAM-MD5";
  }
  return "?";
}

std::optional<auth_mechanism> choose_mechanism(const std::vector<std::string>& offered) {
  auto has = [&](const char* m) {
    return std::find(offered.begin(), offered.end(), m) != offered.end();
  };
  if (has("PLAIN")) return auth_mechanism::plain;
  if (has("CRAM-MD5")) return auth_mechanism::cram_md5;
  if (has("LOGIN")) return auth_mechanism::login;
  return std::nullopt;
}

conf::secret plain_response(std::string_view login, const conf::secret& password) {
  std::string message;
  message += '\0';
  message += login;
  message += '\0';
  message += password.reveal();
  conf::secret out(base64_encode(message));
  OPENSSL_cleanse(message.data(), message.size());
  return out;
}

std::optional<conf::secret> cram_md5_response(std::string_view login, const conf::secret& password,
                                              std::string_view challenge_base64) {
  auto challenge = base64_decode(challenge_base64);
  if (!challenge) return std::nullopt;
  uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned digest_len = 0;
  const std::string& key = password.reveal();
  if (!HMAC(EVP_md5(), key.data(), key.size(), reinterpret_cast<const uint8_t*>(challenge->data()),
            challenge->size(), digest, &digest_len))
    return std::nullopt;
  static const char hex[] = "0123456789abcdef";
  std::string message(login);
  message += ' ';
  for (unsigned i = 0; i < digest_len; ++i) {
    message += hex[digest[i] >> 4];
    message += hex[digest[i] & 15];
  }
  conf::secret out(base64_encode(message));
  OPENSSL_cleanse(message.data(), message.size());
  return out;
}

}  // namespace postern::smtp
