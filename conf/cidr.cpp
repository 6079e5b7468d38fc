#include "cidr.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace postern::conf {

namespace {

bool prefix_matches(const std::uint8_t* a, const std::uint8_t* b, unsigned prefix) {
  unsigned whole = prefix / 8;
  if (std::memcmp(a, b, whole) != 0) return false;
  unsigned rest = prefix % 8;
  if (rest == 0) return true;
  std::uint8_t mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

}  // namespace

bool cidr::contains(const std::uint8_t* address, std::size_t len) const {
  static const std::uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (!v6 && len == 16 && std::memcmp(address, mapped, 12) == 0) {
    address += 12;
    len = 4;
  }
  if ((len == 16) != v6) return false;
  return prefix_matches(address, bytes.data(), prefix);
}

std::string cidr::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), text, sizeof text);
  return std::string(text) + "/" + std::to_string(prefix);
}

bool cidr::within(const cidr& outer) const {
  return v6 == outer.v6 && outer.prefix <= prefix && outer.contains(bytes.data(), v6 ? 16 : 4);
}

bool cidr::is_private() const {
  static const char* const private_ranges[] = {"127.0.0.0/8",    "10.0.0.0/8",     "172.16.0.0/12",
                                               "192.168.0.0/16", "169.254.0.0/16", "::1/128",
                                               "fc00::/7",       "fe80::/10"};
  for (const char* text : private_ranges)
    if (within(*parse_cidr(text))) return true;
  return false;
}

std::optional<cidr> parse_cidr(std::string_view text, std::string* error) {
  auto fail = [&](std::string message) -> std::optional<cidr> {
    if (error) *error = std::move(message);
    return std::nullopt;
  };
  cidr c;
  std::string host(text.substr(0, text.find('/')));
  c.v6 = host.find(':') != std::string::npos;
  if (::inet_pton(c.v6 ? AF_INET6 : AF_INET, host.c_str(), c.bytes.data()) != 1)
    return fail("\"" + std::string(text) + "\" is not an address range (e.g. 192.168.1.0/24)");
  const unsigned bits = c.v6 ? 128 : 32;
  c.prefix = bits;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    auto digits = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), c.prefix);
    if (ec != std::errc() || end != digits.data() + digits.size() || c.prefix > bits)
      return fail("\"" + std::string(text) + "\": prefix length must be 0-" + std::to_string(bits));
  }
  std::array<std::uint8_t, 16> masked{};
  for (unsigned i = 0; i < c.prefix; ++i)
    masked[i / 8] |= static_cast<std::uint8_t>(c.bytes[i / 8] & (0x80 >> (i % 8)));
  if (masked != c.bytes)
    return fail("\"" + std::string(text) + "\" has host bits set; did you mean " +
                cidr{c.v6, masked, c.prefix}.to_string() + "?");
  return c;
}

}  // namespace postern::conf
