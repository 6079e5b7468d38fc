#include "forwarder/smtp/client.hpp"

#include "cli/log.hpp"
#include "forwarder/smtp/sasl.hpp"
#include "tunnel/net/connect.hpp"

namespace postern::smtp {

namespace lg = postern::log;
using asio::awaitable;

namespace {
constexpr std::size_t max_reply_line = 4096;
constexpr std::size_t body_batch = 128 * 1024;

failure_kind classify(const reply& r) {
  if (r.positive()) return failure_kind::none;
  return r.transient() ? failure_kind::rejected_temporary : failure_kind::rejected_permanent;
}

failure_kind classify(net::io_status s) {
  return s == net::io_status::timeout ? failure_kind::timeout : failure_kind::connection;
}
}  // namespace

const char* to_string(failure_kind k) {
  switch (k) {
    case failure_kind::none: return "ok";
    case failure_kind::connection: return "connection";
    case failure_kind::tls: return "tls";
    case failure_kind::protocol: return "protocol";
    case failure_kind::auth: return "auth";
    case failure_kind::credentials: return "credentials";
    case failure_kind::rejected_temporary: return "rejected_temporary";
    case failure_kind::rejected_permanent: return "rejected_permanent";
    case failure_kind::timeout: return "timeout";
  }
  return "?";
}

client::client(asio::any_io_executor ex, client_params params)
    : executor_(std::move(ex)), params_(std::move(params)) {}

client_result client::broken(failure_kind kind, std::string detail) {
  broken_ = true;
  if (channel_) channel_->close();
  return {kind, {}, std::move(detail)};
}

void client::trace(const char* direction, std::string_view line) {
  if (params_.trace && lg::logger::instance().enabled(lg::level::trace))
    lg::event(lg::level::trace, "smtp.upstream",
              {{"session", params_.session}, {"dir", direction}, {"line", line}});
}

awaitable<client_result> client::read_reply(conf::duration timeout) {
  reply_parser parser;
  std::string line;
  // One deadline for the whole reply: a server that dribbles a multi-line reply is cut too.
  const auto deadline = net::line_channel::clock::now() + timeout;
  for (;;) {
    net::io_status s = co_await channel_->read_line_until(line, max_reply_line, deadline);
    if (s == net::io_status::too_long)
      co_return broken(failure_kind::protocol, "reply line too long");
    if (s != net::io_status::ok)
      co_return broken(classify(s), "waiting for a reply: " + channel_->error());
    trace("<", line);
    auto st = parser.feed(line);
    if (st == reply_parser::status::malformed)
      co_return broken(failure_kind::protocol, parser.error() + ": not an SMTP server?");
    if (st == reply_parser::status::done) {
      client_result r;
      r.server = parser.take();
      r.kind = classify(r.server);
      co_return r;
    }
  }
}

awaitable<client_result> client::command(const std::string& line, conf::duration timeout,
                                         bool sensitive) {
  if (broken_ || !channel_) co_return client_result{failure_kind::connection, {}, "not connected"};
  trace(">", sensitive ? "<redacted>" : lg::redact_protocol_line(line));
  channel_->queue(line);
  channel_->queue("\r\n");
  net::io_status s = co_await channel_->flush(timeout);
  if (s != net::io_status::ok)
    co_return broken(classify(s), "sending a command: " + channel_->error());
  co_return co_await read_reply(timeout);
}

awaitable<client_result> client::ehlo() {
  client_result r = co_await command((params_.lmtp ? "LHLO " : "EHLO ") + params_.helo_name,
                                     params_.reply_timeout);
  if (r.ok())
    caps_ = parse_ehlo(r.server);
  else if (r.server.code)
    r.detail = "EHLO refused";
  co_return r;
}

awaitable<client_result> client::start_tls() {
  auto tls = co_await channel_->start_client_tls(*params_.tls, params_.endpoint.addr,
                                                 params_.handshake_timeout);
  verify_ = tls.verdict.verify;
  if (!tls.verified)
    co_return broken(
        tls.status == net::io_status::timeout ? failure_kind::timeout : failure_kind::tls,
        tls.error);
  co_return client_result{};
}

awaitable<client_result> client::async_open() {
  const auto& ep = params_.endpoint;
  net::connect_result c =
      co_await net::async_connect_to(executor_, ep.addr, params_.connect_timeout);
  if (c.fd < 0)
    co_return broken(c.timed_out ? failure_kind::timeout : failure_kind::connection,
                     "connect: " + c.error);
  channel_ = std::make_unique<net::line_channel>(executor_, c.fd);
  broken_ = false;
  if (ep.tls == conf::tls_mode::implicit) {
    client_result t = co_await start_tls();
    if (!t.ok()) co_return t;
  }
  client_result greeting = co_await read_reply(params_.reply_timeout);
  if (!greeting.ok()) {
    if (greeting.server.code) greeting.detail = "greeting refused";
    co_return greeting;
  }
  client_result r = co_await ehlo();
  if (!r.ok()) co_return r;
  if (ep.tls == conf::tls_mode::starttls) {
    if (!caps_.starttls)
      co_return broken(failure_kind::tls, ep.addr.to_string() +
                                              " does not offer STARTTLS; refusing to continue "
                                              "in cleartext");
    r = co_await command("STARTTLS", params_.reply_timeout);
    if (!r.ok()) {
      r.kind = failure_kind::tls;
      r.detail = "STARTTLS refused";
      co_return r;
    }
    if (!channel_->buffered().empty())
      co_return broken(failure_kind::protocol, "data injected before TLS (RFC 3207 §6)");
    r = co_await start_tls();
    if (!r.ok()) co_return r;
    r = co_await ehlo();
    if (!r.ok()) co_return r;
  }
  if (!params_.login.empty()) {
    r = co_await authenticate();
    if (!r.ok()) co_return r;
  }
  const std::string event = params_.role + ".connected";
  lg::info(event, {{"session", params_.session},
                   {params_.role, ep.to_string()},
                   {"login", params_.login},
                   {"auth", auth_used_},
                   {"tls", tls_version()},
                   {"cipher", tls_cipher()},
                   {"verify", verify_}});
  co_return client_result{};
}

awaitable<client_result> client::authenticate() {
  auto mechanism = choose_mechanism(caps_.auth);
  if (!mechanism)
    co_return broken(failure_kind::auth, caps_.auth.empty()
                                             ? "the server offers no AUTH (login needs it)"
                                             : "no supported AUTH mechanism offered");
  auth_used_ = to_string(*mechanism);
  std::string error;
  std::optional<conf::secret> password;
  if (params_.password) password = co_await params_.password(error);
  if (!password) co_return broken(failure_kind::credentials, error.empty() ? "no password" : error);
  client_result r;
  switch (*mechanism) {
    case auth_mechanism::plain: {
      conf::secret response = plain_response(params_.login, *password);
      r = co_await command("AUTH PLAIN " + response.reveal(), params_.reply_timeout, true);
      break;
    }
    case auth_mechanism::login:
      r = co_await command("AUTH LOGIN", params_.reply_timeout);
      if (r.server.code == 334)
        r = co_await command(base64_encode(params_.login), params_.reply_timeout, true);
      if (r.server.code == 334) {
        conf::secret encoded(base64_encode(password->reveal()));
        r = co_await command(encoded.reveal(), params_.reply_timeout, true);
      }
      break;
    case auth_mechanism::cram_md5:
      r = co_await command("AUTH CRAM-MD5", params_.reply_timeout);
      if (r.server.code == 334) {
        auto response = cram_md5_response(params_.login, *password,
                                          r.server.lines.empty() ? "" : r.server.lines.front());
        if (!response) co_return broken(failure_kind::protocol, "malformed CRAM-MD5 challenge");
        r = co_await command(response->reveal(), params_.reply_timeout, true);
      }
      break;
  }
  // 235 is success (RFC 4954 §6); some servers (Postfix's smtp-sink) say 250, equally positive.
  if (r.ok() && r.server.code != 334) co_return r;
  if (r.server.code == 334) {
    // A challenge we did not expect: cancel the exchange (RFC 4954 §4).
    co_await command("*", params_.reply_timeout);
    co_return broken(failure_kind::protocol, "unexpected AUTH challenge");
  }
  if (r.server.code) {
    r.detail = std::string("AUTH ") + to_string(*mechanism) + " as " + params_.login + " refused";
    if (r.server.code != 454 && r.server.code != 421) r.kind = failure_kind::auth;
  }
  co_return r;
}

awaitable<client_result> client::async_mail(const std::string& path) {
  in_transaction_ = true;
  co_return co_await command("MAIL FROM:" + path, params_.reply_timeout);
}

awaitable<client_result> client::async_rcpt(const std::string& path) {
  co_return co_await command("RCPT TO:" + path, params_.reply_timeout);
}

awaitable<client_result> client::async_data() {
  client_result r = co_await command("DATA", params_.reply_timeout);
  if (r.ok() && r.server.code != 354) {
    r.kind = failure_kind::protocol;
    r.detail = "DATA answered " + std::to_string(r.server.code) + " instead of 354";
  }
  encoder_ = dot_encoder{};
  co_return r;
}

awaitable<client_result> client::async_envelope(const std::string& from, const std::string& to) {
  if (!caps_.pipelining) {
    client_result r = co_await async_mail(from);
    if (r.ok()) r = co_await async_rcpt(to);
    if (r.ok()) r = co_await async_data();
    co_return r;
  }
  if (broken_ || !channel_) co_return client_result{failure_kind::connection, {}, "not connected"};
  in_transaction_ = true;
  encoder_ = dot_encoder{};
  for (const std::string& line : {"MAIL FROM:" + from, "RCPT TO:" + to, std::string("DATA")}) {
    trace(">", lg::redact_protocol_line(line));
    channel_->queue(line);
    channel_->queue("\r\n");
  }
  net::io_status s = co_await channel_->flush(params_.reply_timeout);
  if (s != net::io_status::ok)
    co_return broken(classify(s), "sending a command: " + channel_->error());
  client_result replies[3];
  for (auto& r : replies) {
    r = co_await read_reply(params_.reply_timeout);
    if (broken_) co_return r;
  }
  client_result& data = replies[2];
  if (!replies[0].ok() || !replies[1].ok()) {
    if (data.server.code == 354) {
      // A server that starts DATA with no accepted recipient (RFC 2920 §3.1 says it must
      // not): end the empty message so the session stays in step.
      channel_->queue(".\r\n");
      s = co_await channel_->flush(params_.reply_timeout);
      if (s != net::io_status::ok)
        co_return broken(classify(s), "sending a command: " + channel_->error());
      client_result ignored = co_await read_reply(params_.reply_timeout);
      if (broken_) co_return ignored;
    }
    co_return replies[0].ok() ? replies[1] : replies[0];
  }
  if (data.ok() && data.server.code != 354) {
    data.kind = failure_kind::protocol;
    data.detail = "DATA answered " + std::to_string(data.server.code) + " instead of 354";
  }
  co_return data;
}

awaitable<client_result> client::async_write_body(const char* data, std::size_t len) {
  if (broken_) co_return client_result{failure_kind::connection, {}, "upstream connection lost"};
  encoder_.encode(data, len, channel_->out_buffer());
  if (channel_->queued() < body_batch) co_return client_result{};
  net::io_status s = co_await channel_->flush(params_.reply_timeout);
  if (s != net::io_status::ok)
    co_return broken(classify(s), "sending the message: " + channel_->error());
  co_return client_result{};
}

awaitable<client_result> client::async_end_data() {
  if (broken_) co_return client_result{failure_kind::connection, {}, "upstream connection lost"};
  encoder_.finish(channel_->out_buffer());
  trace(">", "<message>.");
  net::io_status s = co_await channel_->flush(params_.reply_timeout);
  if (s != net::io_status::ok)
    co_return broken(classify(s), "sending the message: " + channel_->error());
  client_result r = co_await read_reply(params_.final_reply_timeout);
  if (r.server.code) in_transaction_ = false;
  co_return r;
}

awaitable<client_result> client::async_reset() {
  client_result r = co_await command("RSET", params_.reply_timeout);
  if (r.ok()) in_transaction_ = false;
  co_return r;
}

awaitable<void> client::async_quit() {
  if (channel_ && !broken_) co_await command("QUIT", std::chrono::seconds(5));
  if (channel_) channel_->close();
  broken_ = true;
}

void client::abort() {
  if (channel_) channel_->close();
  broken_ = true;
}

bool client::reusable() {
  return channel_ && !broken_ && !in_transaction_ && !channel_->peer_gone();
}

}  // namespace postern::smtp
