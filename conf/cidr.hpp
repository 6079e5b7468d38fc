#pragma once
/// Client address ranges (`allow = ["127.0.0.0/8", "::1/128", "192.168.10.0/24"]`).

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace postern::conf {

struct cidr {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};  ///< network address (first 4 bytes for IPv4)
  unsigned prefix = 0;

  /// `address` is 4 bytes (IPv4) or 16 bytes (IPv6); IPv4-mapped IPv6 matches IPv4 ranges.
  [[nodiscard]] bool contains(const std::uint8_t* address, std::size_t len) const;
  [[nodiscard]] std::string to_string() const;
  /// Every address of the range is in `outer`.
  [[nodiscard]] bool within(const cidr& outer) const;
  /// The range lies inside a loopback, private (RFC 1918, RFC 4193) or link-local network.
  [[nodiscard]] bool is_private() const;
};

/// Parses "10.0.0.0/8", "::1/128" or a single address (a /32 or /128). Host bits set
/// ("10.0.0.1/8") are an error: they usually mean a typo.
std::optional<cidr> parse_cidr(std::string_view text, std::string* error = nullptr);

}  // namespace postern::conf
