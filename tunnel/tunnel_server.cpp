#include "tunnel_server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "cli/log.hpp"
#include "cli/service_manager.hpp"
#include "cli/supervise.hpp"
#include "tunnel/net/child_process.hpp"
#include "tunnel/net/listen_socket.hpp"

namespace postern::tunnel {

using asio::awaitable;
using asio::use_awaitable;
using asio::experimental::as_tuple;
namespace lg = postern::log;

struct listener {
  explicit listener(asio::io_context& ctx) : acceptor(ctx) {}
  conf::address address;
  asio::basic_socket_acceptor<asio::generic::stream_protocol> acceptor;
  std::shared_ptr<service_runtime> service;
  bool closed = false;
  std::uint64_t refused = 0;  ///< refusals not yet logged
  std::chrono::steady_clock::time_point last_refusal_log{};

  void close() {
    closed = true;
    net::close_listen_socket(acceptor, address);
  }
};

std::vector<std::shared_ptr<service_runtime>> build_services(const conf::tunnel_config& config,
                                                             std::vector<std::string>& errors) {
  std::vector<std::shared_ptr<service_runtime>> out;
  for (const auto& s : config.services) {
    std::string error;
    auto tls = net::tls_context::create(s.tls, s.mode, error);
    if (!tls) {
      errors.push_back("service " + s.name + ": " + error);
      continue;
    }
    auto runtime = std::make_shared<service_runtime>();
    runtime->config = s;
    runtime->tls = std::move(tls);
    out.push_back(std::move(runtime));
  }
  if (!errors.empty()) out.clear();
  return out;
}

tunnel_server::tunnel_server(unsigned threads) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < threads; ++i) workers_.push_back(std::make_unique<asio::io_context>(1));
}

tunnel_server::~tunnel_server() {
  for (auto& w : workers_) w->stop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

asio::io_context& tunnel_server::next_worker() {
  auto& w = *workers_[next_worker_];
  next_worker_ = (next_worker_ + 1) % workers_.size();
  return w;
}

bool tunnel_server::open_listener(listener& l, std::string& error) {
  return net::open_listen_socket(l.acceptor, l.address, "accept", error);
}

bool tunnel_server::apply(const conf::tunnel_config& config, std::vector<std::string>& errors) {
  auto services = build_services(config, errors);
  if (!errors.empty()) return false;
  std::vector<std::shared_ptr<listener>> next, opened;
  for (const auto& svc : services) {
    std::shared_ptr<listener> l;
    for (const auto& old : listeners_)
      if (old->address == svc->config.accept) l = old;
    if (!l) {
      l = std::make_shared<listener>(main_);
      l->address = svc->config.accept;
      std::string error;
      if (!open_listener(*l, error)) {
        errors.push_back("service " + svc->config.name + ": " + error);
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
  for (std::size_t i = 0; i < next.size(); ++i) next[i]->service = services[i];
  for (auto& l : opened) start_accepting(l);
  listeners_ = std::move(next);
  for (const auto& l : listeners_)
    lg::info("listen", {{"service", l->service->config.name},
                        {"accept", l->address.to_string()},
                        {"mode", conf::to_string(l->service->config.mode)}});
  return true;
}

void tunnel_server::start_accepting(std::shared_ptr<listener> l) {
  // A listener must not die silently: the error is logged and it listens again.
  co_spawn(main_, accept_loop(l),
           cli::supervised{"accept.crashed", "", [this, l](const std::string&) {
                             if (!l->closed && !stopping_) start_accepting(l);
                           }});
}

awaitable<void> tunnel_server::accept_loop(std::shared_ptr<listener> l) {
  asio::steady_timer backoff(main_);
  auto delay = std::chrono::milliseconds(50);
  while (!l->closed) {
    auto& worker = next_worker();
    auto [ec, socket] = co_await l->acceptor.async_accept(worker, as_tuple(use_awaitable));
    if (l->closed) break;
    if (ec) {
      // Out of descriptors or memory: wait instead of spinning, keep serving.
      lg::error("accept.failed", {{"accept", l->address.to_string()}, {"error", ec.message()}});
      backoff.expires_after(delay);
      co_await backoff.async_wait(as_tuple(use_awaitable));
      delay = std::min(delay * 2, std::chrono::milliseconds(2000));
      continue;
    }
    delay = std::chrono::milliseconds(50);
    auto service = l->service;
    if (!service->try_acquire()) {
      // One line per refused connection, but at most one per second under a flood.
      ++l->refused;
      auto now = std::chrono::steady_clock::now();
      if (now - l->last_refusal_log >= std::chrono::seconds(1)) {
        lg::warn("conn.refused", {{"service", service->config.name},
                                  {"reason", "max_connections reached"},
                                  {"max_connections", service->config.max_connections},
                                  {"refused", l->refused}});
        l->refused = 0;
        l->last_refusal_log = now;
      }
      continue;  // the socket closes as it goes out of scope
    }
    if (l->address.kind != conf::address_kind::unix_path)
      socket.set_option(asio::ip::tcp::no_delay(true), ec);
    int fd = socket.release();
    net::set_cloexec(fd);
    asio::post(worker, [&worker, service, fd] {
      std::make_shared<connection>(worker.get_executor(), service, fd)->start();
    });
  }
}

void tunnel_server::shutdown(conf::duration grace) {
  if (stopping_) return;
  stopping_ = true;
  for (auto& l : listeners_) l->close();
  lg::info("shutdown",
           {{"connections", live_connections().load()}, {"grace", conf::format_duration(grace)}});
  co_spawn(main_, drain(grace), cli::supervised{"shutdown.crashed", "", [this](const std::string&) {
                                                  for (auto& w : workers_) w->stop();
                                                  main_.stop();
                                                }});
}

awaitable<void> tunnel_server::drain(conf::duration grace) {
  asio::steady_timer tick(main_);
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (live_connections().load() > 0 && std::chrono::steady_clock::now() < deadline) {
    tick.expires_after(std::chrono::milliseconds(50));
    co_await tick.async_wait(as_tuple(use_awaitable));
  }
  if (auto left = live_connections().load(); left > 0)
    lg::warn("shutdown.cut", {{"connections", left}, {"reason", "grace period expired"}});
  for (auto& w : workers_) w->stop();
  main_.stop();
}

void tunnel_server::run() {
  for (auto& w : workers_)
    threads_.emplace_back([ctx = w.get()] {
      auto guard = asio::make_work_guard(*ctx);
      ctx->run();
    });
  auto guard = asio::make_work_guard(main_);
  main_.run();
  for (auto& w : workers_) w->stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

}  // namespace postern::tunnel
