#include "digest.hpp"

#include <openssl/sha.h>

#include <new>

namespace postern::net {

namespace {
SHA256_CTX* context(unsigned char* state) {
  return std::launder(reinterpret_cast<SHA256_CTX*>(state));
}
}  // namespace

sha256::sha256() {
  static_assert(sizeof(SHA256_CTX) <= sizeof state_ && alignof(SHA256_CTX) <= 8);
  SHA256_Init(new (state_) SHA256_CTX);
}

void sha256::update(const char* data, std::size_t len) {
  SHA256_Update(context(state_), data, len);
}

std::string sha256::hex_final() {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256_Final(digest, context(state_));
  SHA256_Init(context(state_));
  return hex(digest, sizeof digest);
}

std::string hex(const unsigned char* data, std::size_t len) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * len);
  for (std::size_t i = 0; i < len; ++i) {
    out += digits[data[i] >> 4];
    out += digits[data[i] & 15];
  }
  return out;
}

}  // namespace postern::net
