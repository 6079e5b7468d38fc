#include "smtp_session.hpp"

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/thread_pool.hpp>
#include <asio/use_awaitable.hpp>

#include "cli/log.hpp"
#include "forwarder/session_machine.hpp"
#include "forwarder/smtp/dot_codec.hpp"
#include "forwarder/smtp/sasl.hpp"
#include "tunnel/net/line_channel.hpp"

#include <openssl/mem.h>

namespace postern::forwarder {

namespace lg = postern::log;
using asio::awaitable;

namespace {

/// The body of DATA as the client sends it, transparency undone. Two bounds hold: `data`
/// between two reads, and for the whole phase `data` plus the time the bytes so far take at
/// min_data_rate (as Postfix's smtpd_min_data_rate), so a client trickling a byte now and
/// then cannot hold its session.
class data_source : public message_source {
 public:
  data_source(net::line_channel& channel, conf::duration timeout, std::uint64_t min_rate)
      : channel_(channel), timeout_(timeout), min_rate_(min_rate) {}

  awaitable<status> read(std::string& out) override {
    for (;;) {
      std::string_view in = channel_.buffered();
      if (!in.empty()) {
        std::size_t before = out.size();
        const std::size_t used = decoder_.feed(in.data(), in.size(), out);
        channel_.consume(used);
        received_ += used;
        if (decoder_.done()) co_return status::end;
        if (out.size() > before) co_return status::more;
      }
      const auto phase_end =
          started_ + timeout_ + std::chrono::milliseconds(received_ * 1000 / min_rate_);
      const auto now = net::line_channel::clock::now();
      net::io_status s = co_await channel_.read_more_until(std::min(now + timeout_, phase_end));
      if (s != net::io_status::ok) {
        error_ = std::string("client ") + to_string(s) + " during DATA";
        if (s == net::io_status::timeout && net::line_channel::clock::now() >= phase_end)
          error_ += " (slower than min_data_rate)";
        co_return status::failed;
      }
    }
  }
  [[nodiscard]] bool ambiguous() const override { return decoder_.ambiguous_dot(); }
  [[nodiscard]] bool bare_cr() const override { return decoder_.bare_cr(); }
  [[nodiscard]] std::string error() const override { return error_; }

 private:
  net::line_channel& channel_;
  conf::duration timeout_;
  std::uint64_t min_rate_;
  net::line_channel::clock::time_point started_ = net::line_channel::clock::now();
  std::uint64_t received_ = 0;
  smtp::dot_decoder decoder_{true};  // a bare CR is refused (relay_transaction::stream)
  std::string error_;
};

/// crypt(3) with a costly hash takes long enough to stall every session: it runs here.
asio::thread_pool& crypt_worker() {
  static asio::thread_pool pool(1);
  return pool;
}

/// Moves bytes between a client and a session_machine, and carries out what it asks: the
/// relay's answers, the password check off the loop, the TLS handshake.
class session {
 public:
  using action = session_machine::action;
  using kind = action::kind;

  session(std::shared_ptr<forwarder_runtime> rt, const asio::any_io_executor& ex, int fd,
          session_peer peer, std::shared_ptr<client_limits> limits, net::session_registry& sessions)
      : rt_(std::move(rt)),
        config_(rt_->config),
        id_(lg::new_session_id()),
        peer_(std::move(peer)),
        limits_(std::move(limits)),
        channel_(ex, fd),
        relay_(std::make_unique<relay_transaction>(*rt_, id_, peer_.address)),
        machine_(settings_for(*rt_, peer_)),
        // The forwarder runs on one loop, and the drain cuts from it: no post needed.
        membership_(sessions.join([this](const std::string& reason) { cut(reason); })) {}

  awaitable<void> run() {
    action a = machine_.greet();
    while (a.what != kind::close) {
      const auto before = machine_.current();
      co_await step(a);
      lg::transition("smtp.client.state", id_, to_string(before), to_string(machine_.current()));
    }
    if (!cut_reason_.empty())  // RFC 5321 §3.8: a server that must stop says 421
      a.replies = {smtp::make_reply(421, "4.3.2", config_.hostname + " shutting down")};
    send(a);
    co_await channel_.flush(config_.timeouts.command);
    co_await relay_->reset();
    channel_.close();
    log_summary();
  }

  /// Ends the session now (shutdown after the grace period): the client's channel and the
  /// upstream are cut, the session ends its usual way and logs `reason`.
  void cut(const std::string& reason) {
    if (!cut_reason_.empty()) return;
    cut_reason_ = reason;
    channel_.cut();
    relay_->abandon();
  }

 private:
  static session_machine::settings settings_for(const forwarder_runtime& rt,
                                                const session_peer& peer) {
    session_machine::settings s;
    s.hostname = rt.config.hostname;
    s.max_message_size = rt.config.max_message_size;
    s.tls_available = rt.server_tls != nullptr;
    s.auth_available = rt.users.has_value();
    s.peer_allowed = peer.allowed;
    s.peer_local = peer.local;
    s.peer_address = peer.address;
    s.peer_ip = peer.ip;
    return s;
  }

  void send(const action& a) {
    for (const smtp::reply& r : a.replies) {
      if (tracing()) trace("<", r.one_line());
      channel_.queue(r.wire());
    }
  }
  bool tracing() const { return rt_->trace && lg::logger::instance().enabled(lg::level::trace); }
  void trace(const char* dir, std::string_view line) {
    if (tracing())
      lg::event(lg::level::trace, "smtp.client",
                {{"session", id_}, {"dir", dir}, {"line", lg::redact_protocol_line(line)}});
  }
  awaitable<bool> flush() {
    net::io_status flushed = co_await channel_.flush(config_.timeouts.command);
    co_return flushed == net::io_status::ok;
  }

  /// Carries out `a` and replaces it with what the machine says next.
  awaitable<void> step(action& a) {
    send(a);
    if (a.reset_relay) co_await relay_->reset();
    switch (a.what) {
      case kind::read_command: co_await read_command(a); break;
      case kind::read_sasl: co_await read_sasl(a); break;
      case kind::check_lock: {
        auto wait = limits_->auth_locked(peer_.ip, client_limits::clock::now());
        if (wait)
          lg::warn("auth.locked",
                   {{"session", id_}, {"peer", peer_.address}, {"for_s", wait->count()}});
        a = machine_.on_lock(wait ? static_cast<long>(wait->count()) : 0);
        break;
      }
      case kind::verify: co_await verify(a); break;
      case kind::start_tls: co_await start_tls(a); break;
      case kind::relay_mail:
      case kind::relay_rcpt: {
        smtp::mail_path path = std::move(*a.path);
        smtp::reply answer;
        if (a.what == kind::relay_mail)
          answer = co_await relay_->mail(std::move(path));
        else
          answer = co_await relay_->rcpt(std::move(path));
        a = machine_.on_relayed(answer, relay_->has_sender(), relay_->recipients());
        break;
      }
      case kind::relay_data: co_await data(a); break;
      case kind::close: break;
    }
  }

  awaitable<void> read_command(action& a) {
    // Replies go out in one write once the client's pipelined commands are all handled.
    if (channel_.buffered().empty()) {
      const bool flushed = co_await flush();
      if (!flushed) {
        a = machine_.on_write_failed();
        co_return;
      }
    }
    std::string line;
    net::io_status s = co_await channel_.read_line(line, session_machine::max_command_line,
                                                   config_.timeouts.command);
    if (s == net::io_status::timeout)
      a = machine_.on_timeout();
    else if (s == net::io_status::closed || s == net::io_status::failed)
      a = machine_.on_closed();
    else if (s == net::io_status::too_long)
      a = machine_.on_line_too_long();
    else {
      trace(">", line);
      a = machine_.on_line(line, !channel_.buffered().empty());
    }
  }

  /// One SASL continuation line (credentials: never traced, wiped once used).
  awaitable<void> read_sasl(action& a) {
    const bool flushed = co_await flush();
    std::string line;
    net::io_status got = net::io_status::failed;
    if (flushed)
      got = co_await channel_.read_line(line, session_machine::max_command_line,
                                        config_.timeouts.command);
    if (got != net::io_status::ok) {
      a = machine_.on_sasl_line(std::nullopt);
      co_return;
    }
    trace(">", "<redacted>");
    a = machine_.on_sasl_line(line);
    OPENSSL_cleanse(line.data(), line.size());
  }

  awaitable<void> verify(action& a) {
    bool ok = false;
    if (a.credentials) {
      const client_users& users = *rt_->users;
      const plain_credentials& creds = *a.credentials;
      ok = co_await asio::co_spawn(
          crypt_worker(),
          [&]() -> awaitable<bool> { co_return users.verify(creds.user, creds.password); },
          asio::use_awaitable);
      OPENSSL_cleanse(a.credentials->password.data(), a.credentials->password.size());
    }
    const std::string user = a.credentials ? a.credentials->user : std::string("(malformed)");
    bool locked = false;
    if (!ok) {
      limits_->auth_failed(peer_.ip, client_limits::clock::now());
      lg::warn("auth.failed", {{"session", id_}, {"peer", peer_.address}, {"user", user}});
      // Each wrong guess costs the guesser time; the wait holds nothing but this session.
      asio::steady_timer delay(co_await asio::this_coro::executor,
                               client_limits::auth_failure_delay);
      co_await delay.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
      locked = limits_->auth_locked(peer_.ip, client_limits::clock::now()).has_value();
    } else {
      lg::info("auth.ok", {{"session", id_}, {"peer", peer_.address}, {"user", user}});
    }
    a = machine_.on_verified(ok, locked);
  }

  awaitable<void> start_tls(action& a) {
    const bool flushed = co_await flush();
    if (!flushed) {
      a = machine_.on_write_failed();
      co_return;
    }
    channel_.attach_tls(rt_->server_tls->new_server());
    net::io_status shaken = co_await channel_.handshake(config_.timeouts.handshake);
    a = machine_.on_tls(shaken == net::io_status::ok, channel_.error());
  }

  awaitable<void> data(action& a) {
    const bool flushed = co_await flush();
    if (!flushed) {
      a = machine_.on_write_failed();
      co_return;
    }
    data_source source(channel_, config_.timeouts.data, config_.min_data_rate);
    std::optional<smtp::reply> answer = co_await relay_->data(source);
    a = machine_.on_data_done(answer, source.error());
  }

  void log_summary() {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started_);
    lg::info("session.end", {{"session", id_},
                             {"peer", peer_.address},
                             {"helo", machine_.helo()},
                             {"tls", channel_.tls_version()},
                             {"user", machine_.user().value_or("")},
                             {"relayed", machine_.relayed()},
                             {"refused", machine_.refused()},
                             {"bytes_in", channel_.bytes_in},
                             {"bytes_out", channel_.bytes_out},
                             {"ms", ms.count()},
                             {"reason", cut_reason_.empty() ? machine_.reason() : cut_reason_}});
  }

  std::shared_ptr<forwarder_runtime> rt_;
  const conf::forwarder_config& config_;
  std::string id_;
  session_peer peer_;
  std::shared_ptr<client_limits> limits_;
  net::line_channel channel_;
  std::unique_ptr<relay_transaction> relay_;
  session_machine machine_;
  std::string cut_reason_;  ///< set by cut()
  std::unique_ptr<net::session_registry::membership> membership_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace

awaitable<void> run_smtp_session(std::shared_ptr<forwarder_runtime> rt, int fd, session_peer peer,
                                 std::shared_ptr<client_limits> limits,
                                 std::unique_ptr<client_limits::ticket> ticket,
                                 net::session_registry& sessions) {
  auto ex = co_await asio::this_coro::executor;
  session s(std::move(rt), ex, fd, std::move(peer), std::move(limits), sessions);
  co_await s.run();
  (void)ticket;  // the session's place is given back when the frame goes
}

}  // namespace postern::forwarder
