#include "tunnel_server.hpp"

#include "postern/version.hpp"

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

namespace postern::tunnel {

using asio::awaitable;
using asio::use_awaitable;
using asio::experimental::as_tuple;
namespace lg = postern::log;

/// One service's door: its runtime, and its refusals not yet logged.
struct tunnel_server::gate {
  std::shared_ptr<service_runtime> service;
  std::uint64_t refused = 0;
  std::chrono::steady_clock::time_point last_refusal_log{};
};

const cli::program_config<conf::tunnel_config>& tunnel_program() {
  static const cli::program_config<conf::tunnel_config> program{
      conf::load_tunnel_config,
      [](const conf::tunnel_config& config, std::vector<std::string>& errors) {
        build_services(config, errors);
      }};
  return program;
}

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

bool tunnel_server::apply(const conf::tunnel_config& config, std::vector<std::string>& errors) {
  if (applied_ && config.threads != 0 && config.threads != worker_count())
    lg::warn("reload.partial", {{"setting", "threads"}, {"effect", "takes effect at restart"}});
  auto services = build_services(config, errors);
  if (!errors.empty()) return false;
  std::vector<net::listen_spec> specs;
  for (const auto& svc : services) {
    auto g = std::make_shared<gate>();
    g->service = svc;
    specs.push_back({svc->config.accept, "accept", "service " + svc->config.name,
                     [this, g](int fd) { admit(*g, fd); }});
  }
  std::vector<std::string> listen_errors;
  if (!listeners_.reconcile(std::move(specs), listen_errors)) {
    for (auto& e : listen_errors) errors.push_back(std::move(e));
    return false;
  }
  applied_ = true;
  for (const auto& svc : services)
    lg::info("listen", {{"service", svc->config.name},
                        {"accept", svc->config.accept.to_string()},
                        {"mode", conf::to_string(svc->config.mode)}});
  return true;
}

void tunnel_server::admit(gate& g, int fd) {
  if (!g.service->try_acquire()) {
    ::close(fd);
    // One line per refused connection, but at most one per second under a flood.
    ++g.refused;
    auto now = std::chrono::steady_clock::now();
    if (now - g.last_refusal_log >= std::chrono::seconds(1)) {
      lg::warn("conn.refused", {{"service", g.service->config.name},
                                {"reason", "max_connections reached"},
                                {"max_connections", g.service->config.max_connections},
                                {"refused", g.refused}});
      g.refused = 0;
      g.last_refusal_log = now;
    }
    return;
  }
  auto& worker = next_worker();
  asio::post(worker, [&worker, service = g.service, fd] {
    std::make_shared<connection>(worker.get_executor(), service, fd)->start();
  });
}

void tunnel_server::shutdown(conf::duration grace) {
  if (stopping_) return;
  stopping_ = true;
  listeners_.close_all();
  lg::info("shutdown",
           {{"connections", live_connections().size()}, {"grace", conf::format_duration(grace)}});
  co_spawn(main_, drain(grace), cli::supervised{"shutdown.crashed", "", [this](const std::string&) {
                                                  for (auto& w : workers_) w->stop();
                                                  main_.stop();
                                                }});
}

awaitable<void> tunnel_server::drain(conf::duration grace) {
  const net::drain_result r = co_await net::async_drain(live_connections(), grace);
  if (r.cut > 0)
    lg::warn("shutdown.cut", {{"connections", r.cut}, {"reason", "grace period expired"}});
  if (r.left > 0)
    lg::warn("shutdown.forced",
             {{"connections", r.left}, {"reason", "still running after the cut"}});
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

void tunnel_server::log_start(const conf::tunnel_config& config, const std::string& file) {
  lg::info("start", {{"version", POSTERN_VERSION},
                     {"config", file},
                     {"services", config.services.size()},
                     {"threads", worker_count()}});
}

}  // namespace postern::tunnel
