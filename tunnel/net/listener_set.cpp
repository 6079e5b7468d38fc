#include "listener_set.hpp"

#include <algorithm>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "cli/log.hpp"
#include "cli/supervise.hpp"
#include "tunnel/net/child_process.hpp"
#include "tunnel/net/listen_socket.hpp"

namespace postern::net {

namespace lg = postern::log;
using asio::awaitable;
using asio::use_awaitable;
using asio::experimental::as_tuple;

struct listener_set::listener {
  explicit listener(asio::io_context& ctx) : acceptor(ctx) {}
  listen_spec spec;
  generic_acceptor acceptor;
  bool closed = false;
  void close() {
    if (closed) return;
    closed = true;
    close_listen_socket(acceptor, spec.address);
  }
};

listener_set::listener_set(asio::io_context& ctx) : ctx_(ctx) {}

listener_set::~listener_set() { close_all(); }

bool listener_set::reconcile(std::vector<listen_spec> specs, std::vector<std::string>& errors) {
  std::vector<std::shared_ptr<listener>> next, opened;
  for (auto& spec : specs) {
    std::shared_ptr<listener> l;
    for (const auto& old : listeners_)
      if (old->spec.address == spec.address) l = old;
    if (!l) {
      l = std::make_shared<listener>(ctx_);
      std::string error;
      if (!open_listen_socket(l->acceptor, spec.address, spec.key, error)) {
        errors.push_back(spec.owner.empty() ? error : spec.owner + ": " + error);
        continue;
      }
      opened.push_back(l);
    }
    next.push_back(l);
  }
  if (!errors.empty()) {
    for (auto& l : opened) l->close();
    return false;
  }
  // Commit: from here on nothing can fail.
  for (auto& old : listeners_)
    if (std::find(next.begin(), next.end(), old) == next.end()) old->close();
  for (std::size_t i = 0; i < next.size(); ++i) next[i]->spec = std::move(specs[i]);
  listeners_ = std::move(next);
  for (auto& l : opened) start_accepting(l);
  return true;
}

void listener_set::close_all() {
  closed_ = true;
  for (auto& l : listeners_) l->close();
}

void listener_set::start_accepting(std::shared_ptr<listener> l) {
  // A listener must not die silently: the error is logged and it listens again.
  asio::co_spawn(ctx_, accept_loop(l),
                 cli::supervised{"accept.crashed", "", [this, l](const std::string&) {
                                   if (!l->closed && !closed_) start_accepting(l);
                                 }});
}

awaitable<void> listener_set::accept_loop(std::shared_ptr<listener> l) {
  asio::steady_timer backoff(ctx_);
  auto delay = std::chrono::milliseconds(50);
  while (!l->closed) {
    auto [ec, socket] = co_await l->acceptor.async_accept(as_tuple(use_awaitable));
    if (l->closed) break;
    if (ec) {
      // Out of descriptors or memory: wait instead of spinning, keep serving.
      lg::error("accept.failed",
                {{l->spec.key, l->spec.address.to_string()}, {"error", ec.message()}});
      backoff.expires_after(delay);
      co_await backoff.async_wait(as_tuple(use_awaitable));
      delay = std::min(delay * 2, max_backoff);
      continue;
    }
    delay = std::chrono::milliseconds(50);
    if (l->spec.address.kind != conf::address_kind::unix_path) {
      // Replies and records are batched per write: Nagle would only hold them back.
      std::error_code ignored;
      socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    }
    int fd = socket.release();
    set_cloexec(fd);
    l->spec.accepted(fd);
  }
}

}  // namespace postern::net
