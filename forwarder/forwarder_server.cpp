#include "forwarder_server.hpp"

#include "postern/version.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "cli/log.hpp"
#include "cli/supervise.hpp"
#include "tunnel/net/child_process.hpp"
#include "tunnel/net/listen_socket.hpp"

namespace postern::forwarder {

namespace lg = postern::log;
using asio::awaitable;
using asio::experimental::as_tuple;

namespace {

/// The client's address for logs, and whether `allow` admits it.
session_peer describe_peer(int fd, const std::vector<conf::cidr>& allow) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  session_peer peer;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0 || ss.ss_family == AF_UNIX) {
    peer.address = peer.ip = "unix";
    peer.allowed = true;  // a unix socket is reachable only on this host, by its permissions
    peer.local = true;
    return peer;
  }
  char text[INET6_ADDRSTRLEN] = {};
  const std::uint8_t* bytes;
  std::size_t size;
  unsigned port;
  if (ss.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    bytes = in6->sin6_addr.s6_addr;
    size = 16;
    port = ntohs(in6->sin6_port);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    peer.ip = text;
    peer.address = std::string("[") + text + "]:" + std::to_string(port);
  } else {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&ss);
    bytes = reinterpret_cast<const std::uint8_t*>(&in4->sin_addr);
    size = 4;
    port = ntohs(in4->sin_port);
    ::inet_ntop(AF_INET, &in4->sin_addr, text, sizeof text);
    peer.ip = text;
    peer.address = std::string(text) + ":" + std::to_string(port);
  }
  for (const auto& range : allow)
    if (range.contains(bytes, size)) peer.allowed = true;
  static const auto v4_loopback = *conf::parse_cidr("127.0.0.0/8");
  static const auto v6_loopback = *conf::parse_cidr("::1/128");
  peer.local = v4_loopback.contains(bytes, size) || v6_loopback.contains(bytes, size);
  return peer;
}

}  // namespace

const cli::program_config<conf::forwarder_config>& forwarder_program() {
  static const cli::program_config<conf::forwarder_config> program{
      conf::load_forwarder_config,
      [](const conf::forwarder_config& config, std::vector<std::string>& errors) {
        asio::io_context ctx;
        build_runtime(ctx, config, false, errors);
      }};
  return program;
}

std::shared_ptr<forwarder_runtime> build_runtime(asio::io_context& ctx,
                                                 const conf::forwarder_config& config, bool trace,
                                                 std::vector<std::string>& errors) {
  auto rt = std::make_shared<forwarder_runtime>();
  rt->config = config;
  rt->trace = trace;
  if (!config.tls_cert_file.empty()) {
    conf::tls_settings tls;
    tls.cert_file = config.tls_cert_file;
    tls.key_file = config.tls_key_file;
    std::string error;
    rt->server_tls = net::tls_context::create(tls, conf::tunnel_mode::server, error);
    if (!rt->server_tls) errors.push_back("STARTTLS certificate: " + error);
  }
  std::string error;
  if (!rt->audit.open(config.audit_file, error)) errors.push_back(error);
  if (!config.auth_users_file.empty()) {
    rt->users = client_users::load(config.auth_users_file, error);
    if (!rt->users) errors.push_back("auth_users_file: " + error);
  }
  for (const auto& m : rt->config.registry.mailboxes)
    if (m.smtp && m.smtp->tls != conf::tls_mode::none) {
      // Fail at start, not at the first message, when a CA file or pin cannot be loaded.
      if (!net::tls_context::create(m.tls, conf::tunnel_mode::client, error))
        errors.push_back("mailbox " + m.address + ": " + error);
    }
  if (!errors.empty()) return nullptr;
  rt->pool = std::make_unique<upstream_pool>(ctx.get_executor(), rt->config, trace);
  return rt;
}

forwarder_server::forwarder_server(bool trace) : trace_(trace) {}

bool forwarder_server::apply(const conf::forwarder_config& config,
                             std::vector<std::string>& errors) {
  auto rt = build_runtime(ctx_, config, trace_, errors);
  return rt && apply(rt, errors);
}

void forwarder_server::log_start(const conf::forwarder_config& config, const std::string& file) {
  lg::info("start", {{"version", POSTERN_VERSION},
                     {"config", file},
                     {"mailboxes", config.registry.mailboxes.size()},
                     {"match", conf::to_string(config.match)}});
}

forwarder_server::~forwarder_server() { listeners_.close_all(); }

bool forwarder_server::apply(std::shared_ptr<forwarder_runtime> rt,
                             std::vector<std::string>& errors) {
  std::vector<net::listen_spec> specs;
  for (const auto& address : rt->config.listen)
    specs.push_back({address, "listen", "", [this](int fd) { admit(fd); }});
  if (!listeners_.reconcile(std::move(specs), errors)) return false;
  if (runtime_) runtime_->pool->close_all();
  runtime_ = std::move(rt);
  for (const auto& address : runtime_->config.listen)
    lg::info("listen", {{"address", address.to_string()}});
  return true;
}

namespace {

/// Answers a connection that gets no session (not allowed, or over a limit) and closes it:
/// one write under a short deadline, nothing read, no session counted.
awaitable<void> refuse_connection(int fd, std::string wire) {
  auto ex = co_await asio::this_coro::executor;
  net::line_channel channel(ex, fd);
  channel.queue(wire);
  co_await channel.flush(std::chrono::seconds(5));
  channel.close();
}

}  // namespace

void forwarder_server::log_refusal(const session_peer& peer, const std::string& reason) {
  // One line per refused client, but at most one per second under a flood.
  ++refused_;
  auto now = std::chrono::steady_clock::now();
  if (now - last_refusal_log_ < std::chrono::seconds(1)) return;
  lg::warn("session.refused", {{"peer", peer.address}, {"reason", reason}, {"refused", refused_}});
  refused_ = 0;
  last_refusal_log_ = now;
}

void forwarder_server::admit(int fd) {
  const auto& config = runtime_->config;
  session_peer peer = describe_peer(fd, config.allow);
  std::string refusal;
  if (!peer.allowed && !runtime_->users) {
    // Never an open relay: a client outside `allow` gets this and nothing else.
    log_refusal(peer, "client address not in allow");
    refusal =
        smtp::make_reply(554, "5.7.1", config.hostname + " does not relay for " + peer.address)
            .wire();
  } else {
    auto [verdict, ticket] = client_limits::admit(
        limits_, peer.ip, peer.allowed, {config.max_sessions, config.max_sessions_per_address});
    if (ticket) {
      asio::co_spawn(
          ctx_,
          run_smtp_session(runtime_, fd, std::move(peer), limits_, std::move(ticket), sessions_),
          cli::supervised{"session.crashed", "", {}});
      return;
    }
    log_refusal(peer, client_limits::to_string(verdict));
    refusal = smtp::make_reply(421, "4.7.0",
                               config.hostname + " too many sessions (" +
                                   client_limits::to_string(verdict) + "), try again later")
                  .wire();
  }
  asio::co_spawn(ctx_, refuse_connection(fd, std::move(refusal)),
                 cli::supervised{"session.crashed", "", {}});
}

void forwarder_server::shutdown(conf::duration grace) {
  if (stopping_) return;
  stopping_ = true;
  listeners_.close_all();
  asio::co_spawn(
      ctx_, drain(grace),
      cli::supervised{"shutdown.crashed", "", [this](const std::string&) { ctx_.stop(); }});
}

awaitable<void> forwarder_server::drain(conf::duration grace) {
  // Every session counts, whichever configuration it started with.
  const net::drain_result r = co_await net::async_drain(sessions_, grace);
  if (r.cut > 0)
    lg::warn("shutdown.cut", {{"sessions", r.cut}, {"reason", "grace period expired"}});
  if (r.left > 0)
    lg::warn("shutdown.forced", {{"sessions", r.left}, {"reason", "still running after the cut"}});
  if (runtime_) runtime_->pool->close_all();
  ctx_.stop();
}

}  // namespace postern::forwarder
