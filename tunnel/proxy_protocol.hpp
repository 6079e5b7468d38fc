#pragma once
/// PROXY protocol v1 and v2 (haproxy.org proxy-protocol.txt): sans-I/O parsing and building.

#include <cstdint>
#include <span>
#include <string>

namespace postern::tunnel {

/// The addresses a PROXY header carries. `family` 0 = UNKNOWN/LOCAL (no addresses).
struct proxy_addresses {
  int family = 0;  ///< AF_INET, AF_INET6 or 0
  std::string source_ip, destination_ip;
  std::uint16_t source_port = 0, destination_port = 0;

  /// "ip:port" of the source, "[v6]:port" for IPv6, "" when unknown.
  [[nodiscard]] std::string source() const;
};

enum class proxy_parse_status { need_more, done, invalid };

struct proxy_parse_result {
  proxy_parse_status status = proxy_parse_status::need_more;
  std::size_t consumed = 0;  ///< header length, valid when done
  proxy_addresses addresses;
  std::string error;  ///< when invalid
};

/// Longest header accepted: v1 is at most 107 bytes; v2 at most 16 + 65535, which we bound
/// to keep memory per connection small (TLVs beyond this are not needed here).
inline constexpr std::size_t proxy_max_header = 16 + 2048;

/// Parses a v1 or v2 header at the start of `data` (detected by its signature).
proxy_parse_result parse_proxy_header(std::span<const std::uint8_t> data);

/// Builds a header. Addresses of family 0 give "PROXY UNKNOWN" (v1) or a LOCAL command (v2).
/// The client's address of the accepted socket `fd` and the local address it reached, as the
/// PROXY protocol carries them (`client` gets both, when they are of one family).
void socket_addresses(int fd, proxy_addresses& client, proxy_addresses& local);

std::string build_proxy_v1(const proxy_addresses& a);
std::string build_proxy_v2(const proxy_addresses& a);

}  // namespace postern::tunnel
