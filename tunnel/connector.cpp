// Reaching a target: resolve it, try each of its addresses, then the next target in
// priority or round-robin order; each target bounded by connect_timeout (the watchdog closes
// an attempt that runs over, see connection::on_deadline).
#include <asio/experimental/as_tuple.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/use_awaitable.hpp>

#include "connection.hpp"
#include "tunnel/net/child_process.hpp"

namespace postern::tunnel {

using asio::awaitable;
using asio::use_awaitable;
using asio::experimental::as_tuple;

awaitable<bool> connection::connect_one(const conf::address& target) {
  using generic = asio::generic::stream_protocol;
  std::vector<generic::endpoint> endpoints;
  attempt_timed_out_ = false;
  begin_phase(phase::connect, config_.timeouts.connect);
  if (target.kind == conf::address_kind::unix_path) {
    endpoints.emplace_back(asio::local::stream_protocol::endpoint(target.path));
  } else {
    asio::ip::tcp::resolver resolver(executor_);
    resolving_ = &resolver;
    auto [ec, results] = co_await resolver.async_resolve(target.host, std::to_string(target.port),
                                                         as_tuple(use_awaitable));
    resolving_ = nullptr;
    if (ec) {
      connect_errors_ += target.to_string() + ": " +
                         (attempt_timed_out_ ? "name resolution timed out" : ec.message()) + "; ";
      co_return false;
    }
    for (const auto& r : results) endpoints.emplace_back(r.endpoint());
  }
  for (const auto& ep : endpoints) {
    if (stopping_) co_return false;
    generic::socket socket(executor_);
    connecting_ = &socket;
    auto [ec] = co_await socket.async_connect(ep, as_tuple(use_awaitable));
    connecting_ = nullptr;
    if (!ec && !attempt_timed_out_) {
      if (target.kind == conf::address_kind::tcp)
        socket.set_option(asio::ip::tcp::no_delay(true), ec);
      net::set_cloexec(socket.native_handle());
      target_ = target.to_string();
      target_host_ = target.host;  // "" for unix sockets, which need verify_host
      server_.emplace(executor_, socket.release());
      co_return true;
    }
    connect_errors_ += target.to_string() + ": " +
                       (attempt_timed_out_ ? "timed out after connect_timeout" : ec.message()) +
                       "; ";
    if (attempt_timed_out_) co_return false;  // the attempt used the target's whole budget
  }
  co_return false;
}

awaitable<outcome> connection::connect_target() {
  const auto& targets = config_.connect;
  std::size_t first = 0;
  if (config_.failover == conf::failover_policy::round_robin)
    first = service_->next_target.fetch_add(1, std::memory_order_relaxed) % targets.size();
  for (std::size_t i = 0; i < targets.size() && !stopping_; ++i)
    if (co_await connect_one(targets[(first + i) % targets.size()])) co_return outcome::closed;
  if (!connect_errors_.empty()) connect_errors_.resize(connect_errors_.size() - 2);
  fail(outcome::connect_failed, "no target reachable: " + connect_errors_);
  co_return aborted();
}

}  // namespace postern::tunnel
