#include "tunnel/net/connect.hpp"

#include <cstring>
#include <memory>

#include <asio/experimental/as_tuple.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/use_awaitable.hpp>

#include "tunnel/net/child_process.hpp"
#include "tunnel/net/deadline.hpp"

namespace postern::net {

using asio::use_awaitable;
using asio::experimental::as_tuple;
using generic = asio::generic::stream_protocol;

namespace {

/// What the deadline must cancel: the resolver, then each socket in turn.
struct attempt {
  explicit attempt(const asio::any_io_executor& ex)
      : resolver(ex), timer(ex, [this] {
          std::error_code ignored;
          resolver.cancel();
          if (socket) socket->close(ignored);
        }) {}
  asio::ip::tcp::resolver resolver;
  generic::socket* socket = nullptr;
  deadline timer;
  [[nodiscard]] bool expired() const { return timer.expired(); }
};

std::chrono::microseconds took_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                               t);
}

/// The address an endpoint names, as a person writes it.
std::string endpoint_text(const generic::endpoint& ep, const conf::address& target) {
  if (target.kind == conf::address_kind::unix_path) return target.path;
  asio::ip::tcp::endpoint tcp;
  tcp.resize(ep.size());
  std::memcpy(tcp.data(), ep.data(), ep.size());
  const std::string host = tcp.address().to_string();
  return (tcp.address().is_v6() ? "[" + host + "]" : host) + ":" + std::to_string(tcp.port());
}

}  // namespace

asio::awaitable<connect_result> async_connect_to(asio::any_io_executor ex,
                                                 const conf::address& target,
                                                 conf::duration timeout, connect_trail* trail) {
  connect_result result;
  auto state = std::make_unique<attempt>(ex);
  state->timer.arm_after(timeout);
  std::vector<generic::endpoint> endpoints;
  if (target.kind == conf::address_kind::unix_path) {
    endpoints.emplace_back(asio::local::stream_protocol::endpoint(target.path));
  } else {
    const auto asked = std::chrono::steady_clock::now();
    auto [ec, found] = co_await state->resolver.async_resolve(
        target.host, std::to_string(target.port), as_tuple(use_awaitable));
    if (trail) trail->resolve_took = took_since(asked);
    if (ec)
      result.error = target.to_string() + ": " + (state->expired() ? "timed out" : ec.message());
    for (const auto& r : found) endpoints.emplace_back(r.endpoint());
  }
  for (const auto& ep : endpoints) {
    if (state->expired()) break;
    generic::socket socket(ex);
    state->socket = &socket;
    const auto started = std::chrono::steady_clock::now();
    auto [ec] = co_await socket.async_connect(ep, as_tuple(use_awaitable));
    state->socket = nullptr;
    if (trail)
      trail->attempts.push_back({endpoint_text(ep, target), took_since(started),
                                 state->expired() ? std::string("timed out")
                                 : ec             ? ec.message()
                                                  : std::string()});
    if (!ec && !state->expired()) {
      if (target.kind == conf::address_kind::tcp)
        socket.set_option(asio::ip::tcp::no_delay(true), ec);
      result.fd = socket.release();
      net::set_cloexec(result.fd);
      result.error.clear();
      break;
    }
    result.error += (result.error.empty() ? "" : "; ") + target.to_string() + ": " +
                    (state->expired() ? std::string("timed out") : ec.message());
  }
  if (endpoints.empty() && result.error.empty()) result.error = target.to_string() + ": no address";
  result.timed_out = state->expired() && result.fd < 0;
  state->timer.disarm();
  co_return result;
}

asio::awaitable<connect_any_result> async_connect_any(asio::any_io_executor ex,
                                                      const std::vector<conf::address>& targets,
                                                      std::size_t first,
                                                      conf::duration per_target) {
  connect_any_result out;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const std::size_t index = (first + i) % targets.size();
    connect_result c = co_await async_connect_to(ex, targets[index], per_target);
    if (c.fd >= 0) {
      out.fd = c.fd;
      out.index = index;
      out.error.clear();
      co_return out;
    }
    out.error += (out.error.empty() ? "" : "; ") + c.error;
    out.timed_out = c.timed_out;
  }
  co_return out;
}

}  // namespace postern::net
