#include "proxy_protocol.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <charconv>
#include <cstring>
#include <string_view>
#include <vector>

namespace postern::tunnel {

namespace {

proxy_addresses addresses_of(const sockaddr_storage& ss) {
  proxy_addresses a;
  char text[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET) {
    const auto& sin = reinterpret_cast<const sockaddr_in&>(ss);
    ::inet_ntop(AF_INET, &sin.sin_addr, text, sizeof text);
    a.family = AF_INET;
    a.source_ip = text;
    a.source_port = ntohs(sin.sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto& sin6 = reinterpret_cast<const sockaddr_in6&>(ss);
    ::inet_ntop(AF_INET6, &sin6.sin6_addr, text, sizeof text);
    a.family = AF_INET6;
    a.source_ip = text;
    a.source_port = ntohs(sin6.sin6_port);
  }
  return a;
}

constexpr std::uint8_t v2_signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                           0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::string_view v1_prefix = "PROXY ";
constexpr std::size_t v1_max = 107;

proxy_parse_result invalid(std::string why) {
  proxy_parse_result r;
  r.status = proxy_parse_status::invalid;
  r.error = std::move(why);
  return r;
}

bool valid_ip(int family, const std::string& text) {
  // inet_pton reads a C string: an embedded NUL would hide what follows it (found by
  // tests/fuzz/fuzz_proxy_protocol).
  if (text.find('\0') != std::string::npos) return false;
  std::uint8_t buf[16];
  return ::inet_pton(family, text.c_str(), buf) == 1;
}

bool parse_port(std::string_view text, std::uint16_t& port) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || v > 65535) return false;
  // The spec forbids leading zeros.
  if (text.size() > 1 && text[0] == '0') return false;
  port = static_cast<std::uint16_t>(v);
  return true;
}

proxy_parse_result parse_v1(std::span<const std::uint8_t> data) {
  std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
  auto end = text.find("\r\n");
  if (end == std::string_view::npos) {
    if (text.size() >= v1_max) return invalid("PROXY v1 header longer than 107 bytes");
    return {};
  }
  if (end + 2 > v1_max) return invalid("PROXY v1 header longer than 107 bytes");
  std::vector<std::string_view> parts;
  std::string_view line = text.substr(0, end);
  size_t pos = 0;
  while (pos <= line.size()) {
    auto space = line.find(' ', pos);
    if (space == std::string_view::npos) space = line.size();
    parts.push_back(line.substr(pos, space - pos));
    pos = space + 1;
  }
  proxy_parse_result r;
  r.status = proxy_parse_status::done;
  r.consumed = end + 2;
  if (parts.size() >= 2 && parts[1] == "UNKNOWN") return r;
  if (parts.size() != 6) return invalid("PROXY v1 header needs 6 fields");
  int family = parts[1] == "TCP4" ? AF_INET : parts[1] == "TCP6" ? AF_INET6 : 0;
  if (!family) return invalid("PROXY v1 protocol must be TCP4, TCP6 or UNKNOWN");
  r.addresses.family = family;
  r.addresses.source_ip = std::string(parts[2]);
  r.addresses.destination_ip = std::string(parts[3]);
  if (!valid_ip(family, r.addresses.source_ip) || !valid_ip(family, r.addresses.destination_ip))
    return invalid("PROXY v1 header has an invalid address");
  if (!parse_port(parts[4], r.addresses.source_port) ||
      !parse_port(parts[5], r.addresses.destination_port))
    return invalid("PROXY v1 header has an invalid port");
  return r;
}

std::string ip_text(int family, const std::uint8_t* bytes) {
  char text[INET6_ADDRSTRLEN];
  ::inet_ntop(family, bytes, text, sizeof text);
  return text;
}

proxy_parse_result parse_v2(std::span<const std::uint8_t> data) {
  if (data.size() < 16) return {};
  std::uint8_t version_command = data[12];
  if ((version_command >> 4) != 2) return invalid("PROXY v2 header has an unknown version");
  std::uint8_t command = version_command & 0x0F;
  if (command > 1) return invalid("PROXY v2 header has an unknown command");
  std::size_t length = (static_cast<std::size_t>(data[14]) << 8) | data[15];
  if (16 + length > proxy_max_header) return invalid("PROXY v2 header too long");
  if (data.size() < 16 + length) return {};
  proxy_parse_result r;
  r.status = proxy_parse_status::done;
  r.consumed = 16 + length;
  if (command == 0) return r;  // LOCAL: health check from the proxy itself
  std::uint8_t family = data[13] >> 4, transport = data[13] & 0x0F;
  const std::uint8_t* body = data.data() + 16;
  if (family == 1 && transport == 1) {
    if (length < 12) return invalid("PROXY v2 IPv4 address block too short");
    r.addresses.family = AF_INET;
    r.addresses.source_ip = ip_text(AF_INET, body);
    r.addresses.destination_ip = ip_text(AF_INET, body + 4);
    r.addresses.source_port = static_cast<std::uint16_t>((body[8] << 8) | body[9]);
    r.addresses.destination_port = static_cast<std::uint16_t>((body[10] << 8) | body[11]);
  } else if (family == 2 && transport == 1) {
    if (length < 36) return invalid("PROXY v2 IPv6 address block too short");
    r.addresses.family = AF_INET6;
    r.addresses.source_ip = ip_text(AF_INET6, body);
    r.addresses.destination_ip = ip_text(AF_INET6, body + 16);
    r.addresses.source_port = static_cast<std::uint16_t>((body[32] << 8) | body[33]);
    r.addresses.destination_port = static_cast<std::uint16_t>((body[34] << 8) | body[35]);
  }
  // Other families (UNIX, UNSPEC) carry nothing we log: keep the connection, no address.
  return r;
}

void put16(std::string& out, std::uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xFF);
}

}  // namespace

void socket_addresses(int fd, proxy_addresses& client, proxy_addresses& local) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) client = addresses_of(ss);
  len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) local = addresses_of(ss);
  if (client.family == local.family && client.family != 0) {
    client.destination_ip = local.source_ip;
    client.destination_port = local.source_port;
  }
}

std::string proxy_addresses::source() const {
  if (family == 0) return {};
  if (family == AF_INET6) return "[" + source_ip + "]:" + std::to_string(source_port);
  return source_ip + ":" + std::to_string(source_port);
}

proxy_parse_result parse_proxy_header(std::span<const std::uint8_t> data) {
  // Decide the version from as many bytes as we have; a prefix of either signature waits.
  std::size_t n = std::min(data.size(), sizeof v2_signature);
  if (std::memcmp(data.data(), v2_signature, n) == 0) {
    if (data.size() < sizeof v2_signature) return {};
    return parse_v2(data);
  }
  std::size_t m = std::min(data.size(), v1_prefix.size());
  if (std::memcmp(data.data(), v1_prefix.data(), m) == 0) {
    if (data.size() < v1_prefix.size()) return {};
    return parse_v1(data);
  }
  return invalid("connection does not start with a PROXY protocol header");
}

std::string build_proxy_v1(const proxy_addresses& a) {
  if (a.family != AF_INET && a.family != AF_INET6) return "PROXY UNKNOWN\r\n";
  return std::string("PROXY ") + (a.family == AF_INET ? "TCP4 " : "TCP6 ") + a.source_ip + " " +
         a.destination_ip + " " + std::to_string(a.source_port) + " " +
         std::to_string(a.destination_port) + "\r\n";
}

std::string build_proxy_v2(const proxy_addresses& a) {
  std::string out(reinterpret_cast<const char*>(v2_signature), sizeof v2_signature);
  bool known = a.family == AF_INET || a.family == AF_INET6;
  out += static_cast<char>(known ? 0x21 : 0x20);  // version 2, PROXY or LOCAL
  if (!known) {
    out += '\0';
    put16(out, 0);
    return out;
  }
  bool v4 = a.family == AF_INET;
  out += static_cast<char>(v4 ? 0x11 : 0x21);  // INET/INET6 over STREAM
  put16(out, v4 ? 12 : 36);
  std::uint8_t buf[16];
  ::inet_pton(a.family, a.source_ip.c_str(), buf);
  out.append(reinterpret_cast<char*>(buf), v4 ? 4 : 16);
  ::inet_pton(a.family, a.destination_ip.c_str(), buf);
  out.append(reinterpret_cast<char*>(buf), v4 ? 4 : 16);
  put16(out, a.source_port);
  put16(out, a.destination_port);
  return out;
}

}  // namespace postern::tunnel
