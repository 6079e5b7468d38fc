#pragma once
/// SHA-256 over a stream of bytes, for the audit log's message digests.

#include <cstddef>
#include <string>
#include <string_view>

namespace postern::net {

class sha256 {
 public:
  sha256();
  void update(const char* data, std::size_t len);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  /// The digest in lower-case hex; the object starts over afterwards.
  std::string hex_final();

 private:
  // BoringSSL's SHA256_CTX, kept in place so no header outside net includes <openssl/sha.h>
  // (the .cpp checks that it fits).
  alignas(8) unsigned char state_[112];
};

/// Lower-case hex of bytes.
std::string hex(const unsigned char* data, std::size_t len);

}  // namespace postern::net
