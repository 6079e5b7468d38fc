#include "smtp_session.hpp"

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/thread_pool.hpp>
#include <asio/use_awaitable.hpp>

#include "cli/log.hpp"
#include "forwarder/smtp/dot_codec.hpp"
#include "forwarder/smtp/sasl.hpp"
#include "tunnel/net/line_channel.hpp"

#include <openssl/mem.h>

namespace postern::forwarder {

namespace lg = postern::log;
using asio::awaitable;

namespace {

/// RFC 5321 §4.5.3.1.4 allows 512 octets; ESMTP parameters and SMTPUTF8 addresses need more.
constexpr std::size_t max_command_line = 2048;
constexpr int max_errors = 10;

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

class session {
 public:
  session(std::shared_ptr<forwarder_runtime> rt, const asio::any_io_executor& ex, int fd,
          session_peer peer, std::shared_ptr<client_limits> limits)
      : rt_(std::move(rt)),
        config_(rt_->config),
        id_(lg::new_session_id()),
        peer_(std::move(peer)),
        limits_(std::move(limits)),
        channel_(ex, fd),
        relay_(std::make_unique<relay_transaction>(*rt_, id_, peer_.address)) {}

  awaitable<void> run() {
    if (!peer_.allowed && !rt_->users) {
      // The accept loop refuses such clients; this is the safety net: never an open relay.
      reason_ = "not allowed";
      say(554, "5.7.1", config_.hostname + " does not relay for " + peer_.address);
    } else {
      say(220, "", config_.hostname + " ESMTP postern-forwarder");
      co_await command_loop();
    }
    co_await channel_.flush(config_.timeouts.command);
    co_await relay_->reset();
    channel_.close();
    log_summary();
  }

 private:
  void say(int code, std::string_view enhanced, const std::string& text) {
    queue(smtp::make_reply(code, enhanced, text));
  }
  void queue(const smtp::reply& r) {
    trace("<", r.one_line());
    channel_.queue(r.wire());
  }
  void trace(const char* dir, std::string_view line) {
    if (rt_->trace && lg::logger::instance().enabled(lg::level::trace))
      lg::event(lg::level::trace, "smtp.client",
                {{"session", id_}, {"dir", dir}, {"line", lg::redact_protocol_line(line)}});
  }

  awaitable<void> command_loop() {
    std::string line;
    for (;;) {
      // Replies go out in one write once the client's pipelined commands are all handled.
      if (channel_.buffered().empty()) {
        net::io_status flushed = co_await channel_.flush(config_.timeouts.command);
        if (flushed != net::io_status::ok) {
          reason_ = "write failed";
          co_return;
        }
      }
      net::io_status s =
          co_await channel_.read_line(line, max_command_line, config_.timeouts.command);
      if (s == net::io_status::timeout) {
        reason_ = "timeout";
        say(421, "4.4.2", config_.hostname + " timeout waiting for a command, closing");
        co_return;
      }
      if (s == net::io_status::closed || s == net::io_status::failed) {
        reason_ = "client closed without QUIT";
        co_return;
      }
      if (s == net::io_status::too_long) {
        say(500, "5.5.2", "line too long (limit " + std::to_string(max_command_line) + ")");
      } else {
        trace(">", line);
        const bool go_on = co_await dispatch(line);
        if (!go_on) co_return;
      }
      if (errors_ >= max_errors) {
        reason_ = "too many errors";
        say(421, "4.7.0", config_.hostname + " too many errors, closing");
        co_return;
      }
    }
  }

  /// Handles one command; false ends the session.
  awaitable<bool> dispatch(const std::string& line) {
    auto cmd = smtp::parse_command(line);
    if (!cmd) {
      ++errors_;
      say(500, "5.5.2", "syntax error");
      co_return true;
    }
    const std::string& verb = cmd->verb;
    if (verb == "EHLO" || verb == "HELO") {
      co_await relay_->reset();
      helo_ = cmd->arg;
      if (helo_.empty()) {
        ++errors_;
        say(501, "5.5.4", verb + " needs a domain or address literal");
      } else if (verb == "HELO") {
        say(250, "", config_.hostname);
      } else {
        queue(ehlo_reply());
      }
    } else if (verb == "AUTH") {
      co_return co_await authenticate(cmd->arg);
    } else if (verb == "STARTTLS") {
      co_return co_await start_tls();
    } else if (verb == "MAIL" || verb == "RCPT") {
      co_await envelope_command(*cmd);
    } else if (verb == "DATA") {
      co_return co_await data();
    } else if (verb == "RSET") {
      co_await relay_->reset();
      say(250, "2.0.0", "reset");
    } else if (verb == "NOOP") {
      say(250, "2.0.0", "ok");
    } else if (verb == "QUIT") {
      reason_ = "quit";
      say(221, "2.0.0", config_.hostname + " closing");
      co_return false;
    } else if (verb == "VRFY") {
      say(252, "2.1.5", "cannot verify; send the message and the upstream will decide");
    } else if (verb == "HELP") {
      say(214, "2.0.0", "commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT STARTTLS");
    } else {
      ++errors_;
      say(502, "5.5.1", verb + " not implemented");
    }
    co_return true;
  }

  smtp::reply ehlo_reply() const {
    std::string text = config_.hostname + " greets " + helo_;
    text += "\nPIPELINING\nSIZE " + std::to_string(config_.max_message_size);
    text += "\n8BITMIME\nSMTPUTF8\nENHANCEDSTATUSCODES";
    if (rt_->server_tls && !tls_) text += "\nSTARTTLS";
    if (auth_offered()) text += "\nAUTH PLAIN LOGIN";
    return smtp::make_reply(250, "", text);
  }

  /// AUTH is offered only where the password cannot be sniffed: over TLS, or on this host.
  bool auth_offered() const { return rt_->users && (tls_ || peer_.local); }

  /// Reads one SASL continuation line (credentials: never traced).
  awaitable<std::optional<std::string>> sasl_line(const std::string& challenge) {
    say(334, "", challenge);
    net::io_status flushed = co_await channel_.flush(config_.timeouts.command);
    sasl_broken_ = flushed != net::io_status::ok;
    if (sasl_broken_) co_return std::nullopt;
    std::string line;
    net::io_status got =
        co_await channel_.read_line(line, max_command_line, config_.timeouts.command);
    sasl_broken_ = got != net::io_status::ok;
    if (sasl_broken_) co_return std::nullopt;
    trace(">", "<redacted>");
    if (line == "*") {
      // The client gave up (RFC 4954 §4).
      say(501, "5.7.0", "authentication cancelled");
      co_return std::nullopt;
    }
    co_return line;
  }

  awaitable<bool> authenticate(const std::string& arg) {
    if (!auth_offered() || user_ || relay_->has_sender()) {
      ++errors_;
      if (!rt_->users)
        say(502, "5.5.1", "AUTH not available");
      else if (!auth_offered())
        say(538, "5.7.11", "encryption required: STARTTLS first");
      else
        say(503, "5.5.1",
            user_ ? "already authenticated" : "AUTH not allowed during a transaction");
      co_return true;
    }
    if (auto wait = limits_->auth_locked(peer_.ip, client_limits::clock::now())) {
      lg::warn("auth.locked",
               {{"session", id_}, {"peer", peer_.address}, {"for_s", wait->count()}});
      reason_ = "AUTH locked for this address";
      say(421, "4.7.0",
          config_.hostname + " too many failed logins from " + peer_.ip + "; try again in " +
              std::to_string(wait->count()) + "s");
      co_return false;
    }
    auto space = arg.find(' ');
    std::string mechanism = arg.substr(0, space);
    for (auto& c : mechanism) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    std::string initial = space == std::string::npos ? "" : arg.substr(space + 1);
    std::optional<plain_credentials> creds;
    if (mechanism == "PLAIN") {
      std::optional<std::string> response = initial;
      if (initial.empty()) response = co_await sasl_line("");
      if (!response) co_return !sasl_broken_;
      auto decoded = smtp::base64_decode(*response);
      if (decoded) creds = parse_plain_response(*decoded);
      if (decoded) OPENSSL_cleanse(decoded->data(), decoded->size());
    } else if (mechanism == "LOGIN") {
      // Clients may send the user name with the command ("AUTH LOGIN dXNlcg==").
      std::optional<std::string> user = initial;
      if (initial.empty()) user = co_await sasl_line("VXNlcm5hbWU6");  // "Username:"
      if (!user) co_return !sasl_broken_;
      auto password = co_await sasl_line("UGFzc3dvcmQ6");  // "Password:"
      if (!password) co_return !sasl_broken_;
      auto u = smtp::base64_decode(*user), p = smtp::base64_decode(*password);
      if (u && p) creds = plain_credentials{*u, *p};
      if (p) OPENSSL_cleanse(p->data(), p->size());
    } else {
      ++errors_;
      say(504, "5.5.4", "unsupported mechanism; use PLAIN or LOGIN");
      co_return true;
    }
    bool ok = false;
    if (creds) {
      const client_users& users = *rt_->users;
      ok = co_await asio::co_spawn(
          crypt_worker(),
          [&]() -> awaitable<bool> { co_return users.verify(creds->user, creds->password); },
          asio::use_awaitable);
      OPENSSL_cleanse(creds->password.data(), creds->password.size());
    }
    if (!ok) {
      ++auth_failures_;
      limits_->auth_failed(peer_.ip, client_limits::clock::now());
      lg::warn("auth.failed", {{"session", id_},
                               {"peer", peer_.address},
                               {"user", creds ? creds->user : std::string("(malformed)")}});
      // Each wrong guess costs the guesser time; the wait holds nothing but this session.
      asio::steady_timer delay(co_await asio::this_coro::executor,
                               client_limits::auth_failure_delay);
      co_await delay.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
      if (auth_failures_ >= 3 || limits_->auth_locked(peer_.ip, client_limits::clock::now())) {
        reason_ = "too many failed logins";
        say(421, "4.7.0", config_.hostname + " too many failed logins, closing");
        co_return false;
      }
      say(535, "5.7.8", "authentication failed");
      co_return true;
    }
    user_ = creds->user;
    lg::info("auth.ok", {{"session", id_}, {"peer", peer_.address}, {"user", *user_}});
    say(235, "2.7.0", "authenticated");
    co_return true;
  }

  awaitable<bool> start_tls() {
    if (!rt_->server_tls || tls_) {
      ++errors_;
      say(tls_ ? 503 : 502, "5.5.1", tls_ ? "TLS already active" : "STARTTLS not available");
      co_return true;
    }
    if (!channel_.buffered().empty()) {
      // Commands pipelined after STARTTLS would be read as if sent over TLS (CVE-2011-0411).
      reason_ = "data after STARTTLS";
      say(554, "5.5.1", "no commands may follow STARTTLS before the handshake");
      co_return false;
    }
    say(220, "2.0.0", "ready to start TLS");
    // GCC 12 miscompiles `if (co_await ...)` in some coroutines (an invalid resume point,
    // SIGILL): every co_await here is a statement of its own.
    net::io_status flushed = co_await channel_.flush(config_.timeouts.command);
    if (flushed != net::io_status::ok) co_return false;
    channel_.attach_tls(rt_->server_tls->new_server());
    net::io_status shaken = co_await channel_.handshake(config_.timeouts.handshake);
    if (shaken != net::io_status::ok) {
      reason_ = "TLS handshake failed: " + channel_.error();
      co_return false;
    }
    tls_ = true;
    helo_.clear();
    user_.reset();  // RFC 3207 §4.2: forget everything learnt before TLS
    co_await relay_->reset();
    co_return true;
  }

  awaitable<void> envelope_command(const smtp::command& cmd) {
    const bool mail = cmd.verb == "MAIL";
    if (helo_.empty()) {
      ++errors_;
      say(503, "5.5.1", "say EHLO first");
      co_return;
    }
    if (!mail && !relay_->has_sender()) {
      ++errors_;
      say(503, "5.5.1", "MAIL first");
      co_return;
    }
    if (mail && !peer_.allowed && !user_) {
      ++errors_;
      say(530, "5.7.0",
          auth_offered() ? "authentication required"
                         : "authentication required: STARTTLS, then AUTH");
      co_return;
    }
    std::string error;
    auto path = smtp::parse_mail_path(cmd.arg, mail ? "FROM" : "TO", &error);
    if (!path) {
      ++errors_;
      say(501, "5.5.4", error);
      co_return;
    }
    smtp::reply answer;
    if (mail)
      answer = co_await relay_->mail(*path);
    else
      answer = co_await relay_->rcpt(*path);
    queue(answer);
  }

  awaitable<bool> data() {
    if (!relay_->has_sender() || relay_->recipients() == 0) {
      ++errors_;
      say(relay_->has_sender() ? 554 : 503, "5.5.1",
          relay_->has_sender() ? "no valid recipients" : "MAIL first");
      co_return true;
    }
    say(354, "", "end data with <CR><LF>.<CR><LF>");
    net::io_status flushed = co_await channel_.flush(config_.timeouts.command);
    if (flushed != net::io_status::ok) co_return false;
    data_source source(channel_, config_.timeouts.data, config_.min_data_rate);
    std::optional<smtp::reply> answer = co_await relay_->data(source);
    co_await relay_->reset();
    if (!answer) {
      reason_ = source.error();
      co_return false;
    }
    ++(answer->positive() ? relayed_ : refused_);
    queue(*answer);
    co_return true;
  }

  void log_summary() {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started_);
    lg::info("session.end", {{"session", id_},
                             {"peer", peer_.address},
                             {"helo", helo_},
                             {"tls", channel_.tls_version()},
                             {"user", user_.value_or("")},
                             {"relayed", relayed_},
                             {"refused", refused_},
                             {"bytes_in", channel_.bytes_in},
                             {"bytes_out", channel_.bytes_out},
                             {"ms", ms.count()},
                             {"reason", reason_}});
  }

  std::shared_ptr<forwarder_runtime> rt_;
  const conf::forwarder_config& config_;
  std::string id_;
  session_peer peer_;
  std::shared_ptr<client_limits> limits_;
  net::line_channel channel_;
  std::unique_ptr<relay_transaction> relay_;
  std::string helo_;
  std::string reason_;
  bool tls_ = false;
  std::optional<std::string> user_;  ///< who authenticated, if anyone
  int auth_failures_ = 0;
  bool sasl_broken_ = false;  ///< the connection failed during an AUTH exchange
  int errors_ = 0;
  std::uint64_t relayed_ = 0;
  std::uint64_t refused_ = 0;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace

awaitable<void> run_smtp_session(std::shared_ptr<forwarder_runtime> rt, int fd, session_peer peer,
                                 std::shared_ptr<client_limits> limits,
                                 std::unique_ptr<client_limits::ticket> ticket) {
  auto ex = co_await asio::this_coro::executor;
  session s(std::move(rt), ex, fd, std::move(peer), std::move(limits));
  co_await s.run();
  (void)ticket;  // the session's place is given back when the frame goes
}

}  // namespace postern::forwarder
