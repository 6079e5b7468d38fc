#include "mail_session.hpp"

#include "cli/log.hpp"
#include "tunnel/net/connect.hpp"

namespace postern::fetch {

namespace lg = postern::log;

asio::awaitable<std::unique_ptr<net::line_channel>> connect_session(const asio::any_io_executor& ex,
                                                                    const session_params& p,
                                                                    session_result& failure) {
  auto c = co_await net::async_connect_to(ex, p.endpoint.addr, p.connect_timeout);
  if (c.fd < 0) {
    failure = {
        c.timed_out ? failure_kind::timeout : failure_kind::connection, {}, "connect: " + c.error};
    co_return nullptr;
  }
  co_return std::make_unique<net::line_channel>(ex, c.fd);
}

bool tracing(const session_params& p) {
  return p.trace && lg::logger::instance().enabled(lg::level::trace);
}

void trace_line(const session_params& p, const char* protocol, const char* dir,
                std::string_view line) {
  if (tracing(p))
    lg::event(lg::level::trace, protocol, {{"session", p.session}, {"dir", dir}, {"line", line}});
}

asio::awaitable<session_result> start_session_tls(net::line_channel& channel,
                                                  const session_params& p) {
  if (!p.tls) co_return session_result{failure_kind::tls, {}, "no TLS context configured"};
  auto tls = co_await channel.start_client_tls(*p.tls, p.endpoint.addr, p.handshake_timeout);
  if (!tls.verified)
    co_return session_result{
        tls.status == net::io_status::timeout ? failure_kind::timeout : failure_kind::tls,
        {},
        tls.error};
  co_return session_result{};
}

session_result io_failure(const net::line_channel& channel, net::io_status s,
                          const std::string& what) {
  if (s == net::io_status::too_long) return {failure_kind::protocol, {}, what + ": line too long"};
  failure_kind k = s == net::io_status::timeout ? failure_kind::timeout : failure_kind::connection;
  return {k, {}, what + ": " + channel.error()};
}

session_result dialogue_failure(const net::starttls_dialogue::step& step,
                                const std::string& server) {
  using dl = net::starttls_dialogue;
  std::string text = step.server_line;  // without its first word (+OK, -ERR, *, the tag)
  if (auto sp = text.find(' '); sp != std::string::npos)
    text.erase(0, sp + 1);
  else
    text.clear();
  switch (step.why) {
    case dl::failure::refused: return {failure_kind::rejected_permanent, text, step.data};
    case dl::failure::starttls_refused:
      return {failure_kind::tls, {}, server + ": " + step.explain()};
    default: return {failure_kind::protocol, {}, step.explain()};
  }
}

}  // namespace postern::fetch
