#include "tunnel/net/session_registry.hpp"

#include <vector>

#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

namespace postern::net {

std::unique_ptr<session_registry::membership> session_registry::join(cutter cut) {
  std::lock_guard lock(mutex_);
  const std::uint64_t id = next_++;
  sessions_.emplace(id, std::move(cut));
  return std::make_unique<membership>(*this, id);
}

void session_registry::leave(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  sessions_.erase(id);
}

std::size_t session_registry::size() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

std::size_t session_registry::cut_all(const std::string& reason) {
  std::vector<cutter> cutters;
  {
    // Called outside the lock: a cutter that ended its session at once would leave().
    std::lock_guard lock(mutex_);
    for (const auto& [id, cut] : sessions_) cutters.push_back(cut);
  }
  for (const auto& cut : cutters) cut(reason);
  return cutters.size();
}

namespace {

/// Waits until `sessions` is empty or `until`; returns what is left.
asio::awaitable<std::size_t> wait_empty(const session_registry& sessions,
                                        std::chrono::steady_clock::time_point until) {
  asio::steady_timer tick(co_await asio::this_coro::executor);
  while (sessions.size() > 0 && std::chrono::steady_clock::now() < until) {
    tick.expires_after(std::chrono::milliseconds(50));
    co_await tick.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
  }
  co_return sessions.size();
}

}  // namespace

asio::awaitable<drain_result> async_drain(session_registry& sessions, conf::duration grace,
                                          conf::duration cut_wait) {
  drain_result r;
  if (co_await wait_empty(sessions, std::chrono::steady_clock::now() + grace) == 0) co_return r;
  r.cut = sessions.cut_all("shutdown: grace period expired");
  r.left = co_await wait_empty(sessions, std::chrono::steady_clock::now() + cut_wait);
  co_return r;
}

}  // namespace postern::net
