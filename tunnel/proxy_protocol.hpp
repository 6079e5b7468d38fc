#pragma once
/// PROXY protocol v1 and v2 (haproxy.org proxy-protocol.txt): sans-I/O parsing and building,
/// and the reading of a header off a stream.

#include <cstdint>
#include <span>
#include <string>

#include <asio/awaitable.hpp>

#include "tunnel/net/stream_end.hpp"

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

/// The client's address of the accepted socket `fd` and the local address it reached, as the
/// PROXY protocol carries them (`client` gets both, when they are of one family).
void socket_addresses(int fd, proxy_addresses& client, proxy_addresses& local);

/// Builds a header. Addresses of family 0 give "PROXY UNKNOWN" (v1) or a LOCAL command (v2).
std::string build_proxy_v1(const proxy_addresses& a);
std::string build_proxy_v2(const proxy_addresses& a);

struct proxy_read {
  enum class how { done, invalid, stopped };
  how outcome = how::done;
  proxy_addresses addresses;  ///< done: the client's (family 0: LOCAL or UNKNOWN)
  std::string error;          ///< invalid: why
};

/// Reads a PROXY header off `end`, exactly: what follows (a ClientHello, say) stays in the
/// socket. `wait(want)` returns an awaitable bool, false when the wait was cut.
template <class Wait>
asio::awaitable<proxy_read> read_proxy_header(net::stream_end& end, Wait wait) {
  proxy_read out;
  char buf[proxy_max_header];
  for (;;) {
    net::io_result r = end.peek(buf, sizeof buf);
    if (r.want != net::io_want::none) {
      if (!co_await wait(r.want)) {
        out.outcome = proxy_read::how::stopped;
        co_return out;
      }
      continue;
    }
    out.outcome = proxy_read::how::invalid;
    if (r.ended()) {
      out.error = "connection closed before the PROXY header";
      co_return out;
    }
    auto parsed = parse_proxy_header({reinterpret_cast<const std::uint8_t*>(buf), r.n});
    if (parsed.status == proxy_parse_status::invalid) {
      out.error = parsed.error;
      co_return out;
    }
    if (parsed.status == proxy_parse_status::done) {
      end.read(buf, parsed.consumed);
      out.outcome = proxy_read::how::done;
      out.addresses = parsed.addresses;
      co_return out;
    }
    // A partial header: wait for more (the caller's deadline bounds it).
    if (r.n == sizeof buf || !co_await wait(net::io_want::read)) {
      out.error = "incomplete PROXY header";
      co_return out;
    }
  }
}

}  // namespace postern::tunnel
