#include "smtp_session.hpp"

#include <asio/this_coro.hpp>

#include "cli/log.hpp"
#include "dot_codec.hpp"
#include "smtp_channel.hpp"

namespace postern::forwarder {

namespace lg = postern::log;
using asio::awaitable;

namespace {

/// RFC 5321 §4.5.3.1.4 allows 512 octets; ESMTP parameters and SMTPUTF8 addresses need more.
constexpr std::size_t max_command_line = 2048;
constexpr int max_errors = 10;

/// The body of DATA as the client sends it, transparency undone.
class data_source : public message_source {
 public:
  data_source(smtp_channel& channel, conf::duration timeout)
      : channel_(channel), timeout_(timeout) {}

  awaitable<status> read(std::string& out) override {
    for (;;) {
      std::string_view in = channel_.buffered();
      if (!in.empty()) {
        std::size_t before = out.size();
        channel_.consume(decoder_.feed(in.data(), in.size(), out));
        if (decoder_.done()) co_return status::end;
        if (out.size() > before) co_return status::more;
      }
      io_status s = co_await channel_.read_more(timeout_);
      if (s != io_status::ok) {
        error_ = std::string("client ") + to_string(s) + " during DATA";
        co_return status::failed;
      }
    }
  }
  [[nodiscard]] bool ambiguous() const override { return decoder_.ambiguous_dot(); }
  [[nodiscard]] std::string error() const override { return error_; }

 private:
  smtp_channel& channel_;
  conf::duration timeout_;
  dot_decoder decoder_;
  std::string error_;
};

class session {
 public:
  session(std::shared_ptr<forwarder_runtime> rt, const asio::any_io_executor& ex, int fd,
          session_peer peer)
      : rt_(std::move(rt)),
        config_(rt_->config),
        id_(lg::new_session_id()),
        peer_(std::move(peer)),
        channel_(ex, fd),
        relay_(std::make_unique<relay_transaction>(*rt_, id_, peer_.address)) {}

  awaitable<void> run() {
    ++rt_->sessions;
    if (!peer_.allowed) {
      // Never an open relay: a client outside `allow` gets nothing but this.
      lg::warn(
          "session.refused",
          {{"session", id_}, {"peer", peer_.address}, {"reason", "client address not in allow"}});
      reason_ = "not allowed";
      say(554, "5.7.1", config_.hostname + " does not relay for " + peer_.address);
    } else if (rt_->sessions > config_.max_sessions) {
      reason_ = "max_sessions";
      say(421, "4.7.0", config_.hostname + " too many sessions, try again later");
    } else {
      say(220, "", config_.hostname + " ESMTP postern-forwarder");
      co_await command_loop();
    }
    co_await channel_.flush(config_.timeouts.command);
    co_await relay_->reset();
    channel_.close();
    --rt_->sessions;
    log_summary();
  }

 private:
  void say(int code, std::string_view enhanced, const std::string& text) {
    queue(make_reply(code, enhanced, text));
  }
  void queue(const reply& r) {
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
      if (channel_.buffered().empty() &&
          co_await channel_.flush(config_.timeouts.command) != io_status::ok) {
        reason_ = "write failed";
        co_return;
      }
      io_status s = co_await channel_.read_line(line, max_command_line, config_.timeouts.command);
      if (s == io_status::timeout) {
        reason_ = "timeout";
        say(421, "4.4.2", config_.hostname + " timeout waiting for a command, closing");
        co_return;
      }
      if (s == io_status::closed || s == io_status::failed) {
        reason_ = "client closed without QUIT";
        co_return;
      }
      if (s == io_status::too_long) {
        say(500, "5.5.2", "line too long (limit " + std::to_string(max_command_line) + ")");
      } else {
        trace(">", line);
        if (!co_await dispatch(line)) co_return;
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
    auto cmd = parse_command(line);
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

  reply ehlo_reply() const {
    std::string text = config_.hostname + " greets " + helo_;
    text += "\nPIPELINING\nSIZE " + std::to_string(config_.max_message_size);
    text += "\n8BITMIME\nSMTPUTF8\nENHANCEDSTATUSCODES";
    if (rt_->server_tls && !channel_tls()) text += "\nSTARTTLS";
    return make_reply(250, "", text);
  }

  bool channel_tls() const { return tls_; }

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
    if (co_await channel_.flush(config_.timeouts.command) != io_status::ok) co_return false;
    channel_.stream().attach_tls(rt_->server_tls->new_server());
    if (co_await channel_.handshake(config_.timeouts.handshake) != io_status::ok) {
      reason_ = "TLS handshake failed: " + channel_.error();
      co_return false;
    }
    tls_ = true;
    helo_.clear();
    co_await relay_->reset();
    co_return true;
  }

  awaitable<void> envelope_command(const command& cmd) {
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
    std::string error;
    auto path = parse_mail_path(cmd.arg, mail ? "FROM" : "TO", &error);
    if (!path) {
      ++errors_;
      say(501, "5.5.4", error);
      co_return;
    }
    reply answer;
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
    if (co_await channel_.flush(config_.timeouts.command) != io_status::ok) co_return false;
    data_source source(channel_, config_.timeouts.data);
    std::optional<reply> answer = co_await relay_->data(source);
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
                             {"tls", channel_.stream().tls_version()},
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
  smtp_channel channel_;
  std::unique_ptr<relay_transaction> relay_;
  std::string helo_;
  std::string reason_;
  bool tls_ = false;
  int errors_ = 0;
  std::uint64_t relayed_ = 0;
  std::uint64_t refused_ = 0;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace

awaitable<void> run_smtp_session(std::shared_ptr<forwarder_runtime> rt, int fd, session_peer peer) {
  auto ex = co_await asio::this_coro::executor;
  session s(std::move(rt), ex, fd, std::move(peer));
  co_await s.run();
}

}  // namespace postern::forwarder
