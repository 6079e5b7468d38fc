#include "client.hpp"

#include "cli/log.hpp"
#include "tunnel/net/connect.hpp"

namespace postern::smtp {

namespace lg = postern::log;
using asio::awaitable;
using kind = client_machine::action::kind;
using net::io_status;

namespace {
constexpr std::size_t max_reply_line = 4096;
constexpr std::size_t body_batch = 128 * 1024;

client_machine::settings machine_settings(const client_params& p) {
  client_machine::settings s;
  s.helo_name = p.helo_name;
  s.lmtp = p.lmtp;
  s.implicit_tls = p.endpoint.tls == conf::tls_mode::implicit;
  s.starttls = p.endpoint.tls == conf::tls_mode::starttls;
  s.login = p.login;
  s.server = p.endpoint.addr.to_string();
  return s;
}

client_result not_connected(const char* what) { return {failure_kind::connection, {}, what}; }
}  // namespace

client::client(asio::any_io_executor ex, client_params params)
    : executor_(std::move(ex)), params_(std::move(params)), machine_(machine_settings(params_)) {}

bool client::tracing() const {
  return params_.trace && lg::logger::instance().enabled(lg::level::trace);
}

void client::trace(const char* direction, std::string_view line) {
  if (tracing())
    lg::event(lg::level::trace, "smtp.upstream",
              {{"session", params_.session}, {"dir", direction}, {"line", line}});
}

conf::duration client::timeout(reply_wait wait) const {
  switch (wait) {
    case reply_wait::command: return params_.reply_timeout;
    case reply_wait::final: return params_.final_reply_timeout;
    case reply_wait::quit: return params_.quit_timeout;
  }
  return params_.reply_timeout;
}

client_result client::io_failure(io_status s, const std::string& what) {
  failure_kind k = s == io_status::timeout ? failure_kind::timeout : failure_kind::connection;
  return {k, {}, what + ": " + channel_->error()};
}

awaitable<std::optional<reply>> client::read_reply(reply_wait wait, client_result& failure) {
  reply_parser parser;
  // One deadline for the whole reply: a server that dribbles a multi-line reply is cut too.
  reply_deadline_.reset();
  for (;;) {
    std::optional<std::string> line = co_await read_line(wait, failure);
    if (!line) co_return std::nullopt;
    auto st = parser.feed(*line);
    if (st == reply_parser::status::malformed) {
      failure = {failure_kind::protocol, {}, parser.error() + ": not an SMTP server?"};
      co_return std::nullopt;
    }
    if (st == reply_parser::status::done) co_return parser.take();
  }
}

awaitable<std::optional<std::string>> client::read_line(reply_wait wait, client_result& failure) {
  // The lines of one reply share its deadline: it is armed by the first line after a command.
  if (!reply_deadline_) reply_deadline_ = net::line_channel::clock::now() + timeout(wait);
  std::string line;
  io_status s = co_await channel_->read_line_until(line, max_reply_line, *reply_deadline_);
  if (s == io_status::too_long) {
    failure = {failure_kind::protocol, {}, "reply line too long"};
    co_return std::nullopt;
  }
  if (s != io_status::ok) {
    failure = io_failure(s, "waiting for a reply");
    co_return std::nullopt;
  }
  trace("<", line);
  co_return line;
}

awaitable<client_result> client::flush(const char* what) {
  io_status s = co_await channel_->flush(params_.reply_timeout);
  if (s != io_status::ok) co_return io_failure(s, what);
  co_return client_result{};
}

awaitable<client_result> client::start_tls() {
  if (!params_.tls) co_return client_result{failure_kind::tls, {}, "no TLS context configured"};
  auto tls = co_await channel_->start_client_tls(*params_.tls, params_.endpoint.addr,
                                                 params_.handshake_timeout);
  verify_ = tls.verdict.verify;
  if (!tls.verified)
    co_return client_result{
        tls.status == io_status::timeout ? failure_kind::timeout : failure_kind::tls,
        {},
        tls.error};
  co_return client_result{};
}

awaitable<client_result> client::drive() {
  client_machine::action& a = next_;
  for (;;) {
    const auto before = machine_.current();
    switch (a.what) {
      case kind::send: {
        if (tracing()) trace(">", a.sensitive ? "<redacted>" : lg::redact_protocol_line(a.bytes));
        channel_->queue(a.bytes);
        reply_deadline_.reset();
        client_result sent = co_await flush("sending a command");
        if (!sent.ok()) {
          a = machine_.on_io_failure(std::move(sent));
          break;
        }
        [[fallthrough]];
      }
      case kind::read: {
        client_result failure;
        if (a.line) {
          std::optional<std::string> line = co_await read_line(a.wait, failure);
          a = line ? machine_.on_line(*line, !channel_->buffered().empty())
                   : machine_.on_io_failure(std::move(failure));
          break;
        }
        std::optional<reply> r = co_await read_reply(a.wait, failure);
        a = r ? machine_.on_reply(*r) : machine_.on_io_failure(std::move(failure));
        break;
      }
      case kind::start_tls: a = machine_.on_tls(co_await start_tls()); break;
      case kind::password: {
        std::string error;
        std::optional<conf::secret> password;
        if (params_.password) password = co_await params_.password(error);
        a = machine_.on_password(std::move(password), error);
        break;
      }
      case kind::done:
        if (a.close) channel_->close();
        co_return std::move(a.result);
    }
    lg::transition("smtp.upstream.state", params_.session, to_string(before),
                   to_string(machine_.current()));
  }
}

awaitable<client_result> client::async_open() {
  if (params_.connect) {
    std::string error;
    std::unique_ptr<net::line_channel> channel = co_await params_.connect(error);
    if (!channel) co_return client_result{failure_kind::connection, {}, "connect: " + error};
    co_return co_await async_open(std::move(channel));
  }
  net::connect_result c =
      co_await net::async_connect_to(executor_, params_.endpoint.addr, params_.connect_timeout);
  if (c.fd < 0)
    co_return client_result{
        c.timed_out ? failure_kind::timeout : failure_kind::connection, {}, "connect: " + c.error};
  co_return co_await async_open(std::make_unique<net::line_channel>(executor_, c.fd));
}

awaitable<client_result> client::async_open(std::unique_ptr<net::line_channel> channel) {
  channel_ = std::move(channel);
  reply_deadline_.reset();
  client_result r = co_await run(machine_.open());
  if (!r.ok()) co_return r;
  const std::string event = params_.role + ".connected";
  lg::info(event, {{"session", params_.session},
                   {params_.role, params_.endpoint.to_string()},
                   {"login", params_.login},
                   {"auth", machine_.auth_used()},
                   {"tls", tls_version()},
                   {"cipher", tls_cipher()},
                   {"verify", verify_}});
  co_return r;
}

awaitable<client_result> client::async_mail(const std::string& path) {
  if (!usable()) co_return not_connected("not connected");
  co_return co_await run(machine_.mail(path));
}

awaitable<client_result> client::async_rcpt(const std::string& path) {
  if (!usable()) co_return not_connected("not connected");
  co_return co_await run(machine_.rcpt(path));
}

awaitable<client_result> client::async_data() {
  if (!usable()) co_return not_connected("not connected");
  encoder_ = dot_encoder{};
  co_return co_await run(machine_.data());
}

awaitable<client_result> client::async_envelope(const std::string& from, const std::string& to) {
  if (!usable()) co_return not_connected("not connected");
  encoder_ = dot_encoder{};
  co_return co_await run(machine_.envelope(from, to));
}

awaitable<client_result> client::async_write_body(const char* data, std::size_t len) {
  if (!usable()) co_return not_connected("upstream connection lost");
  encoder_.encode(data, len, channel_->out_buffer());
  if (channel_->queued() < body_batch) co_return client_result{};
  client_result r = co_await flush("sending the message");
  if (!r.ok()) co_return co_await run(machine_.on_io_failure(std::move(r)));
  co_return r;
}

awaitable<client_result> client::async_end_data() {
  if (!usable()) co_return not_connected("upstream connection lost");
  encoder_.finish(channel_->out_buffer());
  trace(">", "<message>.");
  client_result r = co_await flush("sending the message");
  if (!r.ok()) co_return co_await run(machine_.on_io_failure(std::move(r)));
  co_return co_await run(machine_.end_data());
}

awaitable<client_result> client::async_reset() {
  if (!usable()) co_return not_connected("not connected");
  co_return co_await run(machine_.reset());
}

awaitable<void> client::async_quit() {
  if (usable()) co_await run(machine_.quit());
  abort();
}

void client::abort() {
  if (channel_) channel_->close();
  if (!machine_.broken()) machine_.on_io_failure({failure_kind::connection, {}, "closed"});
}

bool client::reusable() { return usable() && !machine_.in_transaction() && !channel_->peer_gone(); }

}  // namespace postern::smtp
