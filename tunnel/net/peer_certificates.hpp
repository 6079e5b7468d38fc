#pragma once
/// What a TLS peer showed of itself, in words: the certificates it sent and the protocol it
/// agreed, for `postern probe` (the handshake and its checks are tls_context's).

#include <string>
#include <vector>

#include "tunnel/net/tls_types.hpp"

namespace postern::net {

struct certificate_info {
  std::string subject;  ///< RFC 2253, "CN=smtps.pec.example.it,O=..."
  std::string issuer;
  std::string not_before;  ///< "2026-01-31 12:00 UTC"
  std::string not_after;
  long long seconds_left = 0;  ///< until not_after, negative once expired
  std::string spki_sha256;     ///< base64, the pin_sha256 format
};

/// The chain the peer sent, its own certificate first, as far as the handshake got (also
/// after a failed verification); empty when it sent none.
std::vector<certificate_info> peer_chain(SSL* ssl);

/// The ALPN protocol agreed, "" when none.
std::string alpn_selected(SSL* ssl);

}  // namespace postern::net
