#include "pop3_client.hpp"

#include "cli/log.hpp"
#include "forwarder/smtp/dot_codec.hpp"
#include "forwarder/smtp/sasl.hpp"
#include "tunnel/net/connect.hpp"

namespace postern::fetch {

namespace lg = postern::log;
using asio::awaitable;
using net::io_status;

namespace {
constexpr std::size_t max_line = 4096;
constexpr std::size_t max_listing = 1'000'000;  ///< lines of a UIDL/LIST/CAPA response

failure_kind classify(io_status s) {
  return s == net::io_status::timeout ? failure_kind::timeout : failure_kind::connection;
}
}  // namespace

pop3_client::pop3_client(asio::any_io_executor ex, pop3_params params)
    : executor_(std::move(ex)), params_(std::move(params)) {}

pop3_result pop3_client::broken(failure_kind kind, std::string detail) {
  broken_ = true;
  if (channel_) channel_->close();
  return {kind, {}, std::move(detail)};
}

void pop3_client::trace(const char* dir, std::string_view line) {
  if (params_.trace && lg::logger::instance().enabled(lg::level::trace))
    lg::event(lg::level::trace, "pop3",
              {{"session", params_.session}, {"dir", dir}, {"line", line}});
}

awaitable<pop3_result> pop3_client::read_status() {
  std::string line;
  io_status s = co_await channel_->read_line(line, max_line, params_.reply_timeout);
  if (s == net::io_status::too_long)
    co_return broken(failure_kind::protocol, "status line too long");
  if (s != net::io_status::ok)
    co_return broken(classify(s), "waiting for the server: " + channel_->error());
  trace("<", line);
  auto status = parse_status(line);
  if (!status) co_return broken(failure_kind::protocol, "not a POP3 server: unexpected reply");
  pop3_result r;
  r.server = status->text;
  if (!status->ok) r.kind = failure_kind::rejected_permanent;
  co_return r;
}

awaitable<pop3_result> pop3_client::command(const std::string& line, bool sensitive) {
  if (broken_ || !channel_) co_return pop3_result{failure_kind::connection, {}, "not connected"};
  trace(">", sensitive ? "<redacted>" : lg::redact_protocol_line(line));
  channel_->queue(line);
  channel_->queue("\r\n");
  io_status s = co_await channel_->flush(params_.reply_timeout);
  if (s != net::io_status::ok)
    co_return broken(classify(s), "sending a command: " + channel_->error());
  pop3_result earlier = co_await read_pending(std::nullopt);  // pipelined ones answer first
  if (!earlier.ok()) co_return earlier;
  co_return co_await read_status();
}

awaitable<pop3_result> pop3_client::read_lines(const std::function<bool(std::string_view)>& each,
                                               std::string& error) {
  using clock = net::line_channel::clock;
  const auto deadline = clock::now() + params_.message_timeout;
  std::string line;
  std::size_t count = 0;
  for (;;) {
    const auto line_deadline = std::min(deadline, clock::now() + params_.reply_timeout);
    io_status s = co_await channel_->read_line_until(line, max_line, line_deadline);
    if (s != net::io_status::ok)
      co_return broken(s == net::io_status::too_long ? failure_kind::protocol : classify(s),
                       "reading a listing: " + channel_->error());
    if (line == ".") co_return pop3_result{};
    if (++count > max_listing)
      co_return broken(failure_kind::protocol, "listing longer than 1,000,000 lines");
    if (!each(std::string_view(line).substr(line.starts_with("..") ? 1 : 0)))
      co_return broken(failure_kind::protocol, error);
  }
}

awaitable<pop3_result> pop3_client::start_tls() {
  auto tls = co_await channel_->start_client_tls(*params_.tls, params_.endpoint.addr,
                                                 params_.handshake_timeout);
  if (!tls.verified)
    co_return broken(
        tls.status == net::io_status::timeout ? failure_kind::timeout : failure_kind::tls,
        tls.error);
  co_return pop3_result{};
}

awaitable<pop3_result> pop3_client::async_open() {
  const auto& ep = params_.endpoint;
  auto c = co_await net::async_connect_to(executor_, ep.addr, params_.connect_timeout);
  if (c.fd < 0)
    co_return broken(c.timed_out ? failure_kind::timeout : failure_kind::connection,
                     "connect: " + c.error);
  channel_ = std::make_unique<net::line_channel>(executor_, c.fd);
  if (ep.tls == conf::tls_mode::implicit) {
    pop3_result t = co_await start_tls();
    if (!t.ok()) co_return t;
  }
  pop3_result r = co_await read_status();
  if (!r.ok()) co_return r;
  r = co_await command("CAPA");
  if (!r.ok() && broken_) co_return r;  // -ERR is an old server; a broken session is not
  std::vector<std::string> lines;
  std::string error;
  const auto collect = [&lines](std::string_view line) {
    lines.emplace_back(line);
    return true;
  };
  if (r.ok()) {
    r = co_await read_lines(collect, error);
    if (!r.ok()) co_return r;
  }
  caps_ = parse_capa(lines);
  if (ep.tls == conf::tls_mode::starttls) {
    if (!caps_.stls)
      co_return broken(
          failure_kind::tls,
          ep.addr.to_string() + " does not offer STLS; refusing to log in in cleartext");
    r = co_await command("STLS");
    if (!r.ok()) co_return broken(failure_kind::tls, "STLS refused: " + r.server);
    if (!channel_->buffered().empty())
      co_return broken(failure_kind::protocol, "data injected before TLS (RFC 2595 §4)");
    r = co_await start_tls();
    if (!r.ok()) co_return r;
    // Capabilities may differ once TLS is up (RFC 2595 §4).
    lines.clear();
    r = co_await command("CAPA");
    if (r.ok()) r = co_await read_lines(collect, error);
    if (!r.ok() && broken_) co_return r;
    caps_ = parse_capa(lines);
  }
  co_return co_await login();
}

awaitable<pop3_result> pop3_client::login() {
  std::string error;
  std::optional<conf::secret> password;
  if (params_.password) password = co_await params_.password(error);
  if (!password) co_return broken(failure_kind::auth, error.empty() ? "no password" : error);
  pop3_result r;
  const bool plain = std::find(caps_.sasl.begin(), caps_.sasl.end(), "PLAIN") != caps_.sasl.end();
  if (plain) {
    conf::secret response = smtp::plain_response(params_.login, *password);
    r = co_await command("AUTH PLAIN " + response.reveal(), true);
  } else {
    r = co_await command("USER " + params_.login);
    if (r.ok()) r = co_await command("PASS " + password->reveal(), true);
  }
  if (!r.ok() && !broken_) {
    r.kind = failure_kind::auth;
    r.detail =
        std::string(plain ? "AUTH PLAIN" : "USER/PASS") + " as " + params_.login + " refused";
  }
  co_return r;
}

awaitable<pop3_result> pop3_client::async_uidl(uid_listing& out) {
  pop3_result r = co_await command("UIDL");
  if (!r.ok()) {
    if (!broken_) r.detail = "UIDL refused: the server cannot tell messages apart";
    co_return r;
  }
  std::string error;
  // Parsed line by line into the compact listing: no copy of the whole text is kept.
  co_return co_await read_lines(
      [&](std::string_view line) {
        auto entry = parse_uidl_line(line, &error);
        if (!entry) {
          error = "UIDL: " + error;
          return false;
        }
        out.add(entry->number, entry->uid);
        return true;
      },
      error);
}

awaitable<pop3_result> pop3_client::async_list(size_listing& out) {
  pop3_result r = co_await command("LIST");
  if (!r.ok()) co_return r;
  std::string error;
  co_return co_await read_lines(
      [&](std::string_view line) {
        auto entry = parse_list_line(line, &error);
        if (!entry) {
          error = "LIST: " + error;
          return false;
        }
        out.add(entry->number, entry->size);
        return true;
      },
      error);
}

awaitable<pop3_result> pop3_client::async_top(std::uint32_t number, std::string& header) {
  pop3_result r = co_await command("TOP " + std::to_string(number) + " 0");
  if (!r.ok()) co_return r;
  std::string error = "TOP: header larger than 1 MiB";
  co_return co_await read_lines(
      [&](std::string_view line) {
        header.append(line);
        header += "\r\n";
        return header.size() <= 1024 * 1024;
      },
      error);
}

void pop3_client::request_retr(std::uint32_t number) {
  if (!caps_.pipelining || broken_ || !channel_) return;
  const std::string line = "RETR " + std::to_string(number);
  trace(">", line);
  channel_->queue(line);
  channel_->queue("\r\n");
  pending_.push_back({true, number});
}

awaitable<pop3_result> pop3_client::async_retr(std::uint32_t number, const body_sink& sink) {
  if (broken_ || !channel_) co_return pop3_result{failure_kind::connection, {}, "not connected"};
  const bool requested = std::any_of(pending_.begin(), pending_.end(), [number](const auto& p) {
    return p.retr && p.number == number;
  });
  if (!requested) {
    pop3_result r = co_await command("RETR " + std::to_string(number));
    if (!r.ok()) co_return r;
    co_return co_await read_body(number, sink);
  }
  io_status s = co_await channel_->flush(params_.reply_timeout);
  if (s != net::io_status::ok)
    co_return broken(classify(s), "sending a command: " + channel_->error());
  pop3_result r = co_await read_pending(number);
  if (!r.ok()) co_return r;
  pending_.pop_front();
  r = co_await read_status();
  if (!r.ok()) co_return r;
  co_return co_await read_body(number, sink);
}

awaitable<pop3_result> pop3_client::read_body(std::uint32_t number, const body_sink& sink) {
  smtp::dot_decoder decoder;
  std::string chunk;
  // The whole message within message_timeout, and no silence longer than retrieve_timeout:
  // a server that sends an endless message is cut too.
  using clock = net::line_channel::clock;
  const auto deadline = clock::now() + params_.message_timeout;
  for (;;) {
    std::string_view in = channel_->buffered();
    if (!in.empty()) {
      chunk.clear();
      channel_->consume(decoder.feed(in.data(), in.size(), chunk));
      if (!chunk.empty()) {
        const bool more = co_await sink(chunk);
        if (!more) co_return broken(failure_kind::connection, "retrieval stopped by the target");
      }
      if (decoder.done()) co_return pop3_result{};
      if (!channel_->buffered().empty()) continue;
    }
    io_status s = co_await channel_->read_more_until(
        std::min(deadline, clock::now() + params_.retrieve_timeout));
    if (s != net::io_status::ok)
      co_return broken(classify(s), "during RETR " + std::to_string(number) + ": " +
                                        channel_->error() +
                                        (clock::now() >= deadline ? " (message timeout)" : ""));
  }
}

awaitable<pop3_result> pop3_client::read_pending(std::optional<std::uint32_t> stop) {
  while (!pending_.empty()) {
    const pending_reply next = pending_.front();
    if (stop && next.retr && next.number == *stop) break;
    pending_.pop_front();
    pop3_result r = co_await read_status();
    if (broken_) co_return r;
    if (next.retr) {
      if (!r.ok()) continue;
      // Asked for ahead but no longer wanted (the run is stopping): read it to its end.
      const body_sink discard = [](const std::string&) -> awaitable<bool> { co_return true; };
      r = co_await read_body(next.number, discard);
      if (!r.ok()) co_return r;
    } else {
      count_deletion(next.number, r);
    }
  }
  co_return pop3_result{};
}

void pop3_client::count_deletion(std::uint32_t number, const pop3_result& r) {
  if (r.ok()) {
    ++deletions_;
  } else if (!broken_) {
    lg::warn("fetch.dele_refused",
             {{"session", params_.session}, {"number", number}, {"server", r.server}});
  }
}

awaitable<pop3_result> pop3_client::async_dele(std::uint32_t number) {
  if (broken_ || !channel_) co_return pop3_result{failure_kind::connection, {}, "not connected"};
  if (caps_.pipelining) {
    const std::string line = "DELE " + std::to_string(number);
    trace(">", line);
    channel_->queue(line);
    channel_->queue("\r\n");
    pending_.push_back({false, number});
    co_return pop3_result{};
  }
  pop3_result r = co_await command("DELE " + std::to_string(number));
  count_deletion(number, r);
  co_return r;
}

awaitable<pop3_result> pop3_client::async_quit() {
  pop3_result r = co_await command("QUIT");
  if (channel_) channel_->close();
  broken_ = true;
  co_return r;
}

}  // namespace postern::fetch
