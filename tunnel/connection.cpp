#include "connection.hpp"

#include "tunnel/net/connect.hpp"

#include <cstring>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include "cli/log.hpp"
#include "cli/supervise.hpp"
#include "tunnel/net/starttls_dialogue.hpp"

namespace postern::tunnel {

using asio::awaitable;
using asio::use_awaitable;
using asio::experimental::as_tuple;
namespace lg = postern::log;

namespace {

std::int64_t duration_ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

}  // namespace

const char* to_string(outcome o) {
  switch (o) {
    case outcome::closed: return "closed";
    case outcome::reset: return "reset";
    case outcome::timeout: return "timeout";
    case outcome::connect_failed: return "connect_failed";
    case outcome::tls_failed: return "tls_failed";
    case outcome::protocol_error: return "protocol_error";
    case outcome::error: return "error";
    case outcome::stopped: return "stopped";
  }
  return "?";
}

int exit_code_for(outcome o) {
  switch (o) {
    case outcome::closed: return 0;
    case outcome::reset: return 0;
    case outcome::connect_failed: return 69;
    case outcome::timeout: return 75;
    case outcome::tls_failed:
    case outcome::protocol_error: return 76;
    default: return 70;
  }
}

net::session_registry& live_connections() {
  static net::session_registry registry;
  return registry;
}

const char* connection::to_string(phase p) {
  switch (p) {
    case phase::proxy_header: return "proxy_header";
    case phase::connect: return "connect";
    case phase::starttls: return "starttls";
    case phase::handshake: return "handshake";
    case phase::relay: return "idle";
    case phase::linger: return "close_linger";
  }
  return "?";
}

connection::connection(const asio::any_io_executor& ex, std::shared_ptr<service_runtime> service,
                       int client_fd, int client_out_fd)
    : executor_(ex),
      service_(std::move(service)),
      config_(service_->config),
      session_(lg::new_session_id()),
      client_(ex, client_fd, client_out_fd),
      deadline_(ex, [this] { on_deadline(); }),
      phase_deadline_(clock::now() + config_.timeouts.handshake),
      stdio_(client_out_fd >= 0) {
  if (!stdio_) {
    proxy_addresses local;  // where the client connected to: the PROXY header's destination
    socket_addresses(client_fd, client_address_, local);
  }
  peer_ = stdio_ ? "stdio" : client_address_.family ? client_address_.source() : "unix";
}

connection::~connection() { service_->active.fetch_sub(1, std::memory_order_relaxed); }

void connection::fail(outcome o, std::string reason) {
  if (outcome_) return;
  outcome_ = o;
  reason_ = std::move(reason);
}

outcome connection::aborted() {
  // Every path that stops a connection records why first; this is the safety net.
  fail(outcome::error, "setup aborted");
  return *outcome_;
}

void connection::begin_phase(phase p, conf::duration budget) {
  phase_ = p;
  phase_deadline_ = clock::now() + budget;
  watch();
}

void connection::watch() {
  // Connecting bounds itself (each target within connect_timeout, net::async_connect_any);
  // after a deadline has passed, the connection is ending and nothing more is watched.
  if (timed_out_ || finished_ || phase_ == phase::connect) {
    deadline_.disarm();
    return;
  }
  clock::time_point at = phase_deadline_;
  if (phase_ == phase::relay || phase_ == phase::linger) {
    at = last_activity_ + config_.timeouts.idle;
    if (phase_ == phase::linger)
      at = std::min(at, first_direction_done_ + config_.timeouts.close_linger);
  }
  deadline_.arm(at);
}

awaitable<bool> connection::wait_until(net::stream_end& end, net::io_want want) {
  // The phase deadline (watch) ends the wait by cancelling it.
  if (stopping_) co_return false;
  bool ready = co_await end.wait(want);
  co_return ready && !stopping_;
}

awaitable<bool> connection::write_all(net::stream_end& end, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    net::io_result r = end.write(data.data() + off, data.size() - off);
    off += r.n;
    if (r.failed || r.reset) {
      fail(r.reset ? outcome::reset : outcome::error, r.error);
      co_return false;
    }
    if (r.want != net::io_want::none && !co_await wait_until(end, r.want)) co_return false;
  }
  co_return co_await flush_all(end);
}

awaitable<bool> connection::flush_all(net::stream_end& end) {
  for (;;) {
    net::io_result f = end.flush();
    if (f.failed || f.reset) {
      fail(f.reset ? outcome::reset : outcome::error, f.error);
      co_return false;
    }
    if (f.want == net::io_want::none) co_return true;
    if (!co_await wait_until(end, f.want)) co_return false;
  }
}

cli::supervised connection::supervisor(const char* part, bool direction) {
  // A bug in any part ends the connection with its summary line, never silently.
  return {"conn.crashed", session_,
          [self = shared_from_this(), part, direction](const std::string& what) {
            self->abort(outcome::error, std::string("internal error in ") + part + ": " + what);
            if (direction)
              self->direction_done();
            else
              self->finish();
          }};
}

void connection::start() {
  auto self = shared_from_this();
  lg::debug("conn.start", {{"session", session_}, {"service", config_.name}, {"peer", peer_}});
  membership_ = live_connections().join(
      [weak = std::weak_ptr<connection>(self), ex = executor_](const std::string& reason) {
        asio::post(ex, [weak, reason] {
          if (auto c = weak.lock()) c->cut(reason);
        });
      });
  watch();
  co_spawn(executor_, run(self), supervisor("setup", false));
}

awaitable<void> connection::run(std::shared_ptr<connection> self) {
  outcome o = co_await setup();
  if (o != outcome::closed) {
    finish();
    co_return;
  }
  open_directions_ = 2;
  begin_phase(phase::relay, config_.timeouts.idle);
  relay_host& host = *this;
  up_.emplace(host, executor_, client_, *server_);
  down_.emplace(host, executor_, *server_, client_);
  co_spawn(executor_, up_->run(self), supervisor("relay", true));
  co_spawn(executor_, down_->run(self), supervisor("relay", true));
}

void connection::finish() {
  if (finished_) return;
  if (!outcome_) outcome_ = outcome::closed;
  client_.close();
  if (server_) server_->close();
  finished_ = true;
  deadline_.disarm();
  log_summary();
}

void connection::abort(outcome o, const std::string& reason) {
  fail(o, reason);
  stop_both();
}

void connection::stop_both() {
  stopping_ = true;
  client_.cancel();
  if (server_) server_->cancel();
}

void connection::remark(const std::string& text) {
  if (reason_.empty()) reason_ = text;
}

void connection::direction_done() {
  if (--open_directions_ == 1 && !stopping_) {
    first_direction_done_ = clock::now();
    phase_ = phase::linger;
    watch();
    return;
  }
  if (open_directions_ == 0) finish();
}

void connection::cut(const std::string& reason) {
  if (!finished_) end_now(outcome::stopped, reason);
}

void connection::end_now(outcome o, const std::string& reason) {
  fail(o, reason);
  timed_out_ = true;  // nothing more is watched: finish() comes next
  deadline_.disarm();
  stop_both();
}

void connection::on_deadline() {
  // In the relay the deadline slides with activity, which does not re-arm it (that would
  // cost a timer operation per read): look again, and sleep on if there was some.
  if (phase_ == phase::relay || phase_ == phase::linger) {
    watch();
    if (deadline_.armed() && deadline_.at() > clock::now()) return;
  }
  std::string reason = std::string("no progress within ") + to_string(phase_) + "_timeout";
  if (phase_ == phase::linger) reason = "other direction still open after close_linger";
  if (phase_ == phase::relay) reason = "no data in either direction within idle_timeout";
  end_now(outcome::timeout, reason);
}

awaitable<outcome> connection::connect_target() {
  const auto& targets = config_.connect;
  std::size_t first = 0;
  if (config_.failover == conf::failover_policy::round_robin)
    first = service_->next_target.fetch_add(1, std::memory_order_relaxed) % targets.size();
  begin_phase(phase::connect, config_.timeouts.connect);
  net::connect_any_result c =
      co_await net::async_connect_any(executor_, targets, first, config_.timeouts.connect);
  if (c.fd < 0) {
    fail(outcome::connect_failed, "no target reachable: " + c.error);
    co_return aborted();
  }
  target_ = targets[c.index].to_string();
  target_host_ = targets[c.index].host;  // "" for unix sockets, which need verify_host
  server_.emplace(executor_, c.fd);
  co_return outcome::closed;
}

awaitable<outcome> connection::setup() {
  const bool client_mode = config_.mode == conf::tunnel_mode::client;
  if (config_.proxy_accept) {
    outcome o = co_await read_proxy_header();
    if (o != outcome::closed) co_return o;
  }
  if (!client_mode) {
    client_.attach_tls(service_->tls->new_server());
    {
      outcome o = co_await tls_handshake(client_);
      if (o != outcome::closed) co_return o;
    }
  }
  {
    outcome o = co_await connect_target();
    if (o != outcome::closed) co_return o;
  }
  if (config_.proxy_send != conf::proxy_version::none) {
    begin_phase(phase::handshake, config_.timeouts.handshake);
    if (!co_await write_all(*server_, proxy_header_to_send())) co_return aborted();
  }
  if (client_mode) {
    if (config_.starttls != conf::app_protocol::none) {
      outcome o = co_await starttls_preamble();
      if (o != outcome::closed) co_return o;
    }
    server_->attach_tls(service_->tls->new_client(target_host_, target_));
    {
      outcome o = co_await tls_handshake(*server_);
      if (o != outcome::closed) co_return o;
    }
    if (!starttls_greeting_.empty() && !co_await write_all(client_, starttls_greeting_))
      co_return aborted();
  }
  co_return outcome::closed;
}

std::string connection::proxy_header_to_send() const {
  return config_.proxy_send == conf::proxy_version::v1 ? build_proxy_v1(client_address_)
                                                       : build_proxy_v2(client_address_);
}

awaitable<outcome> connection::read_proxy_header() {
  begin_phase(phase::proxy_header, config_.timeouts.handshake);
  const proxy_read got = co_await tunnel::read_proxy_header(
      client_, [this](net::io_want want) { return wait_until(client_, want); });
  if (got.outcome == proxy_read::how::invalid) fail(outcome::protocol_error, got.error);
  if (got.outcome != proxy_read::how::done) co_return aborted();
  if (got.addresses.family != 0) {
    client_address_ = got.addresses;
    peer_ = client_address_.source();
  }
  co_return outcome::closed;
}

awaitable<outcome> connection::starttls_preamble() {
  begin_phase(phase::starttls, config_.timeouts.handshake);
  net::starttls_dialogue dialogue(config_.starttls, config_.starttls_hostname.empty()
                                                        ? std::string("localhost")
                                                        : config_.starttls_hostname);
  char buf[1024];
  net::starttls_dialogue::step step = dialogue.on_input({});
  for (;;) {
    if (step.what == net::starttls_dialogue::action::send) {
      if (!co_await write_all(*server_, step.data)) co_return aborted();
      step = dialogue.on_input({});
      continue;
    }
    if (step.what == net::starttls_dialogue::action::start_tls) break;
    if (step.what == net::starttls_dialogue::action::fail) {
      fail(outcome::protocol_error, "STARTTLS: " + step.explain());
      co_return aborted();
    }
    net::io_result r = server_->read(buf, sizeof buf);
    if (r.want != net::io_want::none) {
      if (!co_await wait_until(*server_, r.want)) co_return aborted();
      continue;
    }
    if (r.ended()) {
      fail(outcome::protocol_error, "STARTTLS: server closed the connection during the preamble");
      co_return aborted();
    }
    step = dialogue.on_input({buf, r.n});
  }
  if (lg::logger::instance().enabled(lg::level::trace))
    lg::event(lg::level::trace, "starttls.dialogue",
              {{"session", session_}, {"transcript", dialogue.transcript()}});
  starttls_greeting_ = dialogue.greeting_for_client();
  co_return outcome::closed;
}

awaitable<outcome> connection::tls_handshake(net::stream_end& end) {
  begin_phase(phase::handshake, config_.timeouts.handshake);
  const net::handshake_end h = co_await net::drive_handshake(
      end, [this, &end](net::io_want want) { return wait_until(end, want); });
  if (h.outcome == net::handshake_end::how::stopped) co_return aborted();
  if (h.outcome == net::handshake_end::how::failed) {
    net::handshake_failure why = end.explain_failure(h.last);
    fail(outcome::tls_failed, why.reason);
    refused_real_client_ = end.is_server() && why.real_client;
    if (net::stream_end::verify_failed(h.last)) verdict_.verify = "failed";
    co_return aborted();
  }
  verdict_ = service_->tls->check_peer(end.ssl());
  if (!verdict_.ok) {
    fail(outcome::tls_failed, verdict_.reason);
    co_return aborted();
  }
  co_return outcome::closed;
}

void connection::log_summary() {
  outcome o = outcome_.value_or(outcome::closed);
  const bool failed_handshake =
      o == outcome::tls_failed && config_.mode == conf::tunnel_mode::server && !up_;
  lg::level l = lg::level::info;
  if (o == outcome::connect_failed || o == outcome::tls_failed || o == outcome::protocol_error ||
      o == outcome::error || o == outcome::stopped)
    l = lg::level::warn;
  // A real client refused in the handshake (ALPN, TLS version, certificate) is the admin's
  // business: info, with the reason. Scanners and TCP health checks that never speak TLS are
  // noise unless asked for.
  if (failed_handshake) l = refused_real_client_ ? lg::level::info : lg::level::debug;
  if (o == outcome::protocol_error && phase_ == phase::proxy_header) l = lg::level::debug;
  if (config_.log_handshake_errors && l == lg::level::debug) l = lg::level::info;
  if (!lg::logger::instance().enabled(l)) return;
  net::stream_end* tls_end =
      config_.mode == conf::tunnel_mode::client ? (server_ ? &*server_ : nullptr) : &client_;
  std::string version = tls_end ? tls_end->tls_version() : "";
  std::string cipher = tls_end ? tls_end->tls_cipher() : "";
  bool resumed = tls_end && tls_end->resumed();
  std::string alpn = tls_end ? tls_end->alpn() : "";
  lg::event(l, "conn.end",
            {{"session", session_},
             {"service", config_.name},
             {"peer", peer_},
             {"target", target_.empty() ? "-" : target_},
             {"outcome", tunnel::to_string(o)},
             {"bytes_up", up_ ? up_->bytes() : 0},
             {"bytes_down", down_ ? down_->bytes() : 0},
             {"duration_ms", duration_ms(clock::now() - started_)},
             {"tls", version.empty() ? "-" : version},
             {"cipher", cipher.empty() ? "-" : cipher},
             {"resumed", resumed ? "yes" : "no"},
             {"alpn", alpn.empty() ? "-" : alpn},
             {"verify", verdict_.verify.empty() ? "-" : verdict_.verify},
             {"identity", verdict_.identity.empty() ? "-" : verdict_.identity},
             {"reason", reason_.empty() ? "-" : reason_}});
}

}  // namespace postern::tunnel
