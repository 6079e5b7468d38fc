#include "pop3_client.hpp"

#include "cli/log.hpp"
#include "forwarder/smtp/dot_codec.hpp"

namespace postern::fetch {

namespace lg = postern::log;
using asio::awaitable;
using kind = pop3_machine::action::kind;
using net::io_status;

namespace {
constexpr std::size_t max_line = 4096;
constexpr std::size_t max_listing = 1'000'000;  ///< lines of a UIDL/LIST/CAPA response

pop3_machine::settings machine_settings(const pop3_params& p) {
  pop3_machine::settings s;
  s.implicit_tls = p.endpoint.tls == conf::tls_mode::implicit;
  s.stls = p.endpoint.tls == conf::tls_mode::starttls;
  s.login = p.login;
  s.server = p.endpoint.addr.to_string();
  return s;
}

}  // namespace

pop3_client::pop3_client(asio::any_io_executor ex, pop3_params params)
    : executor_(std::move(ex)), params_(std::move(params)), machine_(machine_settings(params_)) {}

bool pop3_client::tracing() const { return fetch::tracing(params_); }

void pop3_client::trace(const char* dir, std::string_view line) {
  trace_line(params_, "pop3", dir, line);
}

awaitable<pop3_result> pop3_client::read_status_line(std::string& line) {
  io_status s = co_await channel_->read_line(line, max_line, params_.reply_timeout);
  if (s == io_status::too_long)
    co_return pop3_result{failure_kind::protocol, {}, "status line too long"};
  if (s != io_status::ok) co_return io_failure(*channel_, s, "waiting for the server");
  trace("<", line);
  co_return pop3_result{};
}

awaitable<pop3_result> pop3_client::read_lines(const line_consumer& each) {
  using clock = net::line_channel::clock;
  const auto deadline = clock::now() + params_.message_timeout;
  std::string line;
  std::size_t count = 0;
  for (;;) {
    const auto line_deadline = std::min(deadline, clock::now() + params_.reply_timeout);
    io_status s = co_await channel_->read_line_until(line, max_line, line_deadline);
    if (s != io_status::ok) co_return io_failure(*channel_, s, "reading a listing");
    auto unstuffed = smtp::unstuff_line(line);
    if (!unstuffed) co_return pop3_result{};
    if (++count > max_listing)
      co_return pop3_result{failure_kind::protocol, {}, "listing longer than 1,000,000 lines"};
    if (!each(*unstuffed))
      co_return pop3_result{failure_kind::protocol, {}, error_ ? *error_ : "malformed listing"};
  }
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
        if (!more)
          co_return pop3_result{failure_kind::connection, {}, "retrieval stopped by the target"};
      }
      if (decoder.done()) co_return pop3_result{};
      if (!channel_->buffered().empty()) continue;
    }
    io_status s = co_await channel_->read_more_until(
        std::min(deadline, clock::now() + params_.retrieve_timeout));
    if (s != io_status::ok)
      co_return io_failure(*channel_, s,
                           "during RETR " + std::to_string(number) +
                               (clock::now() >= deadline ? " (message timeout)" : ""));
  }
}

// A command sent (or what is queued flushed), then one status line read.
awaitable<void> pop3_client::exchange(pop3_machine::action& a) {
  if (a.what == kind::send) {
    if (tracing()) trace(">", a.sensitive ? "<redacted>" : lg::redact_protocol_line(a.bytes));
    channel_->queue(a.bytes);
  }
  if (a.what == kind::send || a.flush_first) {
    io_status s = co_await channel_->flush(params_.reply_timeout);
    if (s != io_status::ok) {
      a = machine_.on_io_failure(io_failure(*channel_, s, "sending a command"));
      co_return;
    }
  }
  std::string line;
  pop3_result r = co_await read_status_line(line);
  if (!r.ok())
    a = machine_.on_io_failure(std::move(r));
  else if (a.line)
    a = machine_.on_line(line, !channel_->buffered().empty());
  else
    a = machine_.on_status(parse_status(line));
}

// One action of the machine; the result when the operation is over.
awaitable<std::optional<pop3_result>> pop3_client::step(pop3_machine::action& a) {
  if (a.refused_dele)
    lg::warn("fetch.dele_refused", {{"session", params_.session},
                                    {"number", a.refused_dele->first},
                                    {"server", a.refused_dele->second}});
  switch (a.what) {
    case kind::send:
    case kind::read_status: co_await exchange(a); co_return std::nullopt;
    case kind::queue:
      trace(">", a.bytes);
      channel_->queue(a.bytes);
      co_return pop3_result{};
    case kind::read_lines: {
      std::vector<std::string> capa;
      const line_consumer collect = [&capa](std::string_view line) {
        capa.emplace_back(line);
        return true;
      };
      pop3_result r = co_await read_lines(a.capa || !each_ ? collect : *each_);
      a = !r.ok()  ? machine_.on_io_failure(std::move(r))
          : a.capa ? machine_.on_capa(capa)
                   : machine_.on_lines_done();
      co_return std::nullopt;
    }
    case kind::read_body: {
      static const body_sink discard = [](const std::string&) -> awaitable<bool> {
        co_return true;
      };
      pop3_result r = co_await read_body(a.number, a.discard || !sink_ ? discard : *sink_);
      a = r.ok() ? machine_.on_body_done() : machine_.on_io_failure(std::move(r));
      co_return std::nullopt;
    }
    case kind::start_tls:
      a = machine_.on_tls(co_await start_session_tls(*channel_, params_));
      co_return std::nullopt;
    case kind::password: {
      std::string error;
      std::optional<conf::secret> password;
      if (params_.password) password = co_await params_.password(error);
      a = machine_.on_password(std::move(password), error);
      co_return std::nullopt;
    }
    case kind::done:
      if (a.close) channel_->close();
      co_return std::move(a.result);
  }
  co_return pop3_result{failure_kind::protocol, {}, "unknown action"};
}

awaitable<pop3_result> pop3_client::drive() {
  for (;;) {
    const auto before = machine_.current();
    std::optional<pop3_result> done = co_await step(next_);
    if (done) co_return std::move(*done);
    lg::transition("pop3.state", params_.session, to_string(before), to_string(machine_.current()));
  }
}

awaitable<pop3_result> pop3_client::async_open() {
  pop3_result failure;
  auto channel = co_await connect_session(executor_, params_, failure);
  if (!channel) co_return failure;
  co_return co_await async_open(std::move(channel));
}

awaitable<pop3_result> pop3_client::async_open(std::unique_ptr<net::line_channel> channel) {
  channel_ = std::move(channel);
  co_return co_await run(machine_.open());
}

awaitable<pop3_result> pop3_client::async_uidl(uid_listing& out) {
  if (!usable()) co_return not_connected();
  std::string error;
  // Parsed line by line into the compact listing: no copy of the whole text is kept.
  const line_consumer each = [&](std::string_view line) {
    auto entry = parse_uidl_line(line, &error);
    if (!entry) {
      error = "UIDL: " + error;
      return false;
    }
    out.add(entry->number, entry->uid);
    return true;
  };
  co_return co_await run(
      machine_.listing("UIDL", "UIDL refused: the server cannot tell messages apart"), &each,
      &error);
}

awaitable<pop3_result> pop3_client::async_list(size_listing& out) {
  if (!usable()) co_return not_connected();
  std::string error;
  const line_consumer each = [&](std::string_view line) {
    auto entry = parse_list_line(line, &error);
    if (!entry) {
      error = "LIST: " + error;
      return false;
    }
    out.add(entry->number, entry->size);
    return true;
  };
  co_return co_await run(machine_.listing("LIST"), &each, &error);
}

awaitable<pop3_result> pop3_client::async_top(std::uint32_t number, std::string& header) {
  if (!usable()) co_return not_connected();
  const std::string error = "TOP: header larger than 1 MiB";
  const line_consumer each = [&](std::string_view line) {
    header.append(line);
    header += "\r\n";
    return header.size() <= 1024 * 1024;
  };
  co_return co_await run(machine_.listing("TOP " + std::to_string(number) + " 0"), &each, &error);
}

void pop3_client::request_retr(std::uint32_t number) {
  if (!usable()) return;
  pop3_machine::action a = machine_.request_retr(number);
  if (a.what != kind::queue) return;
  trace(">", a.bytes);
  channel_->queue(a.bytes);
}

awaitable<pop3_result> pop3_client::async_retr(std::uint32_t number, const body_sink& sink) {
  if (!usable()) co_return not_connected();
  co_return co_await run(machine_.retr(number), nullptr, nullptr, &sink);
}

awaitable<pop3_result> pop3_client::async_dele(std::uint32_t number) {
  if (!usable()) co_return not_connected();
  co_return co_await run(machine_.dele(number));
}

awaitable<pop3_result> pop3_client::async_quit() {
  if (!usable()) {
    if (channel_) channel_->close();
    co_return not_connected();
  }
  co_return co_await run(machine_.quit());
}

}  // namespace postern::fetch
