// The speed of the AEADs postern's TLS records use, as the linked BoringSSL runs them on
// this CPU: the floor under postern-tunnel's user CPU per GB. Compare with
// `openssl speed -evp aes-128-gcm -bytes 16384` (the OpenSSL that stunnel uses).
//   build/tests/aead_speed
#include <chrono>
#include <cstdio>
#include <vector>

#include <openssl/aead.h>

namespace {

double seal_gb_per_s(const EVP_AEAD* aead) {
  std::vector<uint8_t> key(EVP_AEAD_key_length(aead), 7), nonce(EVP_AEAD_nonce_length(aead), 1);
  EVP_AEAD_CTX ctx;
  EVP_AEAD_CTX_init(&ctx, aead, key.data(), key.size(), EVP_AEAD_DEFAULT_TAG_LENGTH, nullptr);
  constexpr size_t record = 16384;
  std::vector<uint8_t> in(record, 0x5a), out(record + EVP_AEAD_max_overhead(aead));
  size_t total = 0, out_len = 0;
  auto start = std::chrono::steady_clock::now();
  std::chrono::duration<double> elapsed{};
  while (elapsed.count() < 2.0) {
    for (int i = 0; i < 1000; ++i) {
      EVP_AEAD_CTX_seal(&ctx, out.data(), &out_len, out.size(), nonce.data(), nonce.size(),
                        in.data(), in.size(), nullptr, 0);
      total += record;
    }
    elapsed = std::chrono::steady_clock::now() - start;
  }
  EVP_AEAD_CTX_cleanup(&ctx);
  return static_cast<double>(total) / elapsed.count() / 1e9;
}

}  // namespace

int main() {
  std::printf("| AEAD (BoringSSL, 16 KiB records) | GB/s | CPU s/GB |\n|---|---|---|\n");
  for (auto [name, aead] : {std::pair{"AES-128-GCM", EVP_aead_aes_128_gcm()},
                            {"AES-256-GCM", EVP_aead_aes_256_gcm()},
                            {"ChaCha20-Poly1305", EVP_aead_chacha20_poly1305()}}) {
    double speed = seal_gb_per_s(aead);
    std::printf("| %s | %.2f | %.3f |\n", name, speed, 1.0 / speed);
  }
}
