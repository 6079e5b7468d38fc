#include "imap_client.hpp"

#include <algorithm>

#include "cli/log.hpp"

namespace postern::fetch {

namespace lg = postern::log;
using asio::awaitable;
using kind = imap_machine::action::kind;
using net::io_status;
using clock = net::line_channel::clock;

namespace {
/// A response line (a capability list, a long VANISHED set) and the literals one collects
/// (headers): past these the server is not believed.
constexpr std::size_t max_line = 1024 * 1024;
constexpr std::size_t max_collected = 2 * 1024 * 1024;

imap_machine::settings machine_settings(const imap_params& p) {
  imap_machine::settings s;
  s.implicit_tls = p.endpoint.tls == conf::tls_mode::implicit;
  s.starttls = p.endpoint.tls == conf::tls_mode::starttls;
  s.login = p.login;
  s.server = p.endpoint.addr.to_string();
  return s;
}

}  // namespace

imap_client::imap_client(asio::any_io_executor ex, imap_params params)
    : executor_(std::move(ex)), params_(std::move(params)), machine_(machine_settings(params_)) {}

bool imap_client::tracing() const { return fetch::tracing(params_); }

void imap_client::trace(const char* dir, std::string_view line) {
  trace_line(params_, "imap", dir, line);
}

awaitable<imap_result> imap_client::read_literal(std::uint64_t n, imap_machine::literal_use use,
                                                 std::string& wire) {
  using use_t = imap_machine::literal_use;
  if (use == use_t::collect && wire.size() + n > max_collected)
    co_return imap_result{failure_kind::protocol, {}, "a literal larger than 2 MiB"};
  std::string chunk;
  std::uint64_t left = n;
  while (left > 0) {
    std::string_view in = channel_->buffered();
    if (!in.empty()) {
      const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(left, in.size()));
      if (use == use_t::collect) {
        wire.append(in.substr(0, take));
      } else if (use == use_t::stream && sink_) {
        chunk.assign(in.substr(0, take));
        channel_->consume(take);
        left -= take;
        const bool more = co_await (*sink_)(chunk);
        if (!more)
          co_return imap_result{failure_kind::connection, {}, "retrieval stopped by the target"};
        continue;
      }
      channel_->consume(take);
      left -= take;
      continue;
    }
    // The whole answer by the operation's deadline, and no silence longer than
    // retrieve_timeout inside it: a server that sends an endless literal is cut too.
    io_status s = co_await channel_->read_more_until(
        std::min(op_deadline_, clock::now() + params_.retrieve_timeout));
    if (s != io_status::ok)
      co_return io_failure(*channel_, s,
                           std::string("inside a literal") +
                               (clock::now() >= op_deadline_ ? " (message timeout)" : ""));
  }
  co_return imap_result{};
}

awaitable<imap_result> imap_client::read_response(std::string& wire, clock::time_point deadline) {
  wire.clear();
  std::string line;
  for (;;) {
    io_status s = co_await channel_->read_line_until(line, max_line, deadline);
    if (s != io_status::ok) co_return io_failure(*channel_, s, "waiting for the server");
    trace("<", line);
    auto n = trailing_literal(line);
    if (!n) {
      wire += line;
      co_return imap_result{};
    }
    const auto use = wire.empty() ? machine_.on_literal(line) : imap_machine::literal_use::collect;
    if (use == imap_machine::literal_use::collect) {
      wire += line;
      wire += "\r\n";
    } else {
      // The octets went elsewhere: an empty literal stands in for them.
      wire.append(line, 0, line.rfind('{'));
      wire += "{0}\r\n";
    }
    imap_result r = co_await read_literal(*n, use, wire);
    if (!r.ok()) co_return r;
  }
}

void imap_client::queue(const imap_machine::action& a) {
  if (tracing()) {
    std::string_view shown = a.bytes;
    if (!shown.empty() && shown.back() == '\n') shown.remove_suffix(1);
    if (!shown.empty() && shown.back() == '\r') shown.remove_suffix(1);
    if (a.sensitive) {
      // "p1 LOGIN user" and "p1 AUTHENTICATE PLAIN" stay visible; credentials do not, nor
      // the bare SASL response that follows a continuation.
      std::size_t end = 0;
      for (int word = 0; word < 3 && end != std::string_view::npos; ++word)
        end = shown.find(' ', end == 0 ? 0 : end + 1);
      const bool command = shown.find(" LOGIN ") != std::string_view::npos ||
                           shown.find(" AUTHENTICATE ") != std::string_view::npos;
      trace(">", command && end != std::string_view::npos
                     ? std::string(shown.substr(0, end)) + " <redacted>"
                     : std::string("<redacted>"));
    } else {
      trace(">", shown);
    }
  }
  channel_->queue(a.bytes);
}

// Sends what the action holds (and what is queued), then reads one response.
awaitable<void> imap_client::exchange(imap_machine::action& a, bool idle) {
  if (a.what == kind::send) queue(a);
  if (channel_->queued() > 0) {
    io_status s = co_await channel_->flush(params_.reply_timeout);
    if (s != io_status::ok) {
      a = machine_.on_io_failure(io_failure(*channel_, s, "sending a command"));
      co_return;
    }
  }
  if (a.line) {  // the STARTTLS preamble: plain lines, no literals
    std::string line;
    io_status s =
        co_await channel_->read_line(line, net::starttls_dialogue::max_line, params_.reply_timeout);
    if (s != io_status::ok) {
      a = machine_.on_io_failure(io_failure(*channel_, s, "waiting for the server"));
      co_return;
    }
    trace("<", line);
    a = machine_.on_line(line, !channel_->buffered().empty());
    co_return;
  }
  const auto deadline =
      idle ? idle_until_ : std::min(op_deadline_, clock::now() + params_.reply_timeout);
  std::string wire;
  imap_result r = co_await read_response(wire, deadline);
  if (idle && r.kind == failure_kind::timeout && channel_->buffered().empty()) {
    a = machine_.on_idle_timeout();
    co_return;
  }
  if (!r.ok()) {
    a = machine_.on_io_failure(std::move(r));
    co_return;
  }
  std::string error;
  auto parsed = parse_imap_response(wire, error);
  if (!parsed) {
    a = machine_.on_io_failure({failure_kind::protocol, {}, "not IMAP: " + error});
    co_return;
  }
  a = machine_.on_response(*parsed);
}

awaitable<std::optional<imap_result>> imap_client::step(imap_machine::action& a) {
  if (a.refused)
    lg::warn("fetch.imap_refused", {{"session", params_.session},
                                    {"command", a.refused->first},
                                    {"server", a.refused->second}});
  switch (a.what) {
    case kind::send:
    case kind::read: co_await exchange(a, false); co_return std::nullopt;
    case kind::idle_wait: co_await exchange(a, true); co_return std::nullopt;
    case kind::queue: queue(a); co_return imap_result{};
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
  co_return imap_result{failure_kind::protocol, {}, "unknown action"};
}

awaitable<imap_result> imap_client::drive() {
  op_deadline_ = clock::now() + idle_period_ + params_.message_timeout;
  for (;;) {
    const auto before = machine_.current();
    std::optional<imap_result> done = co_await step(next_);
    if (done) co_return std::move(*done);
    lg::transition("imap.state", params_.session, to_string(before), to_string(machine_.current()));
  }
}

awaitable<imap_result> imap_client::async_open() {
  imap_result failure;
  auto channel = co_await connect_session(executor_, params_, failure);
  if (!channel) co_return failure;
  co_return co_await async_open(std::move(channel));
}

awaitable<imap_result> imap_client::async_open(std::unique_ptr<net::line_channel> channel) {
  channel_ = std::move(channel);
  co_return co_await run(machine_.open());
}

awaitable<imap_result> imap_client::async_select(const std::string& folder, bool read_only,
                                                 std::uint32_t known_uidvalidity,
                                                 std::uint64_t known_modseq) {
  if (!usable()) co_return not_connected();
  co_return co_await run(machine_.select(folder, read_only, known_uidvalidity, known_modseq));
}

awaitable<imap_result> imap_client::async_list(std::uint32_t from_uid,
                                               std::vector<imap_listed>& out) {
  if (!usable()) co_return not_connected();
  imap_result r = co_await run(machine_.list(from_uid));
  out = machine_.take_listing();
  co_return r;
}

awaitable<imap_result> imap_client::async_headers(const std::string& uid_set,
                                                  std::vector<imap_header>& out) {
  if (!usable()) co_return not_connected();
  imap_result r = co_await run(machine_.headers(uid_set));
  out = machine_.take_headers();
  co_return r;
}

void imap_client::request_body(std::uint32_t uid) {
  if (!usable()) return;
  imap_machine::action a = machine_.request_body(uid);
  if (a.what == kind::queue) queue(a);
}

awaitable<imap_result> imap_client::async_body(std::uint32_t uid, const body_sink& sink,
                                               bool& found) {
  found = false;
  if (!usable()) co_return not_connected();
  imap_result r = co_await run(machine_.body(uid), &sink);
  found = machine_.found();
  co_return r;
}

void imap_client::store(const std::string& uid_set, const std::string& flags) {
  if (usable()) queue(machine_.store(uid_set, flags));
}

void imap_client::copy(const std::string& uid_set, const std::string& folder) {
  if (usable()) queue(machine_.copy(uid_set, folder));
}

void imap_client::move(const std::string& uid_set, const std::string& folder) {
  if (usable()) queue(machine_.move(uid_set, folder));
}

void imap_client::expunge(const std::string& uid_set) {
  if (usable()) queue(machine_.expunge(uid_set));
}

awaitable<imap_result> imap_client::async_sync() {
  if (!usable()) co_return not_connected();
  co_return co_await run(machine_.sync());
}

awaitable<imap_result> imap_client::async_idle(conf::duration period, bool& new_mail) {
  new_mail = false;
  if (!usable()) co_return not_connected();
  imap_result r = co_await run(machine_.idle(), nullptr, period);
  new_mail = machine_.new_mail();
  co_return r;
}

awaitable<imap_result> imap_client::async_logout() {
  if (!usable()) {
    if (channel_) channel_->close();
    co_return not_connected();
  }
  co_return co_await run(machine_.logout());
}

}  // namespace postern::fetch
