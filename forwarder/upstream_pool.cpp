#include "upstream_pool.hpp"

#include <algorithm>
#include <cctype>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>

#include "cli/log.hpp"
#include "cli/supervise.hpp"

namespace postern::forwarder {

namespace lg = postern::log;
using asio::awaitable;

namespace {
constexpr std::chrono::seconds first_backoff{60};
constexpr std::chrono::seconds max_backoff{15 * 60};

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
}  // namespace

upstream_pool::upstream_pool(asio::any_io_executor ex, const conf::forwarder_config& config,
                             bool trace)
    : executor_(ex), config_(config), trace_(trace), reaper_(ex) {
  start_reaper();
}

void upstream_pool::start_reaper() {
  // The reaper must not die silently: the error is logged and it starts again.
  asio::co_spawn(
      executor_, reap(),
      cli::supervised{"pool.reaper_crashed", "", [this, alive = alive_](const std::string&) {
                        if (*alive && !closed_) start_reaper();
                      }});
}

upstream_pool::~upstream_pool() {
  *alive_ = false;
  reaper_.cancel();
}

upstream_pool::mailbox_state& upstream_pool::state(const conf::mailbox& m) {
  auto [it, inserted] = states_.try_emplace(lower(m.address));
  if (inserted && m.smtp && m.smtp->tls != conf::tls_mode::none) {
    it->second.tls =
        net::tls_context::create(m.tls, conf::tunnel_mode::client, it->second.tls_error);
  }
  return it->second;
}

smtp::reply upstream_pool::admit(const conf::mailbox& m) {
  mailbox_state& st = state(m);
  const auto now = clock::now();
  if (now < st.login_blocked_until) {
    auto wait = std::chrono::duration_cast<std::chrono::seconds>(st.login_blocked_until - now);
    return smtp::make_reply(454, "4.7.0",
                            "login of " + m.address + " to " + m.smtp->addr.to_string() +
                                " was refused (" + st.login_failure + "); next attempt in " +
                                std::to_string(wait.count() + 1) + "s");
  }
  const auto per_minute = m.limits.messages_per_minute;
  while (!st.sent.empty() && now - st.sent.front() >= std::chrono::minutes(1)) st.sent.pop_front();
  if (per_minute > 0 && st.sent.size() >= per_minute) {
    auto wait = std::chrono::duration_cast<std::chrono::seconds>(st.sent.front() +
                                                                 std::chrono::minutes(1) - now);
    return smtp::make_reply(451, "4.7.0",
                            "rate limit: " + m.address + " may send " + std::to_string(per_minute) +
                                " messages per minute; try again in " +
                                std::to_string(wait.count() + 1) + "s");
  }
  if (per_minute > 0) st.sent.push_back(now);
  return {};
}

smtp::client_params upstream_pool::params_for(const conf::mailbox& m, mailbox_state& st,
                                              const std::string& session) {
  smtp::client_params p;
  p.endpoint = *m.smtp;
  p.helo_name = config_.hostname;
  p.tls = st.tls;
  p.login = m.login;
  p.password = net::password_of(m, config_.timeouts.password_command);
  p.connect_timeout = config_.timeouts.connect;
  p.handshake_timeout = config_.timeouts.handshake;
  p.reply_timeout = config_.timeouts.reply;
  p.final_reply_timeout = config_.timeouts.final_reply;
  p.session = session;
  p.trace = trace_;
  p.connect = connect_;
  return p;
}

awaitable<upstream_pool::lease> upstream_pool::async_acquire(const conf::mailbox& m,
                                                             const std::string& session) {
  mailbox_state& st = state(m);
  lease out;
  while (!st.idle.empty()) {
    idle_session candidate = std::move(st.idle.back());
    st.idle.pop_back();
    if (candidate.client->reusable()) {
      out.client = std::move(candidate.client);
      out.reused = true;
      co_return out;
    }
    candidate.client->abort();
  }
  if (m.smtp->tls != conf::tls_mode::none && !st.tls) {
    out.failure = {smtp::failure_kind::tls, {}, "TLS setup for " + m.address + ": " + st.tls_error};
    co_return out;
  }
  auto client = std::make_unique<smtp::client>(executor_, params_for(m, st, session));
  smtp::client_result r = co_await client->async_open();
  if (r.ok()) {
    st.login_backoff = std::chrono::seconds(0);
    out.client = std::move(client);
    co_return out;
  }
  if (r.kind == smtp::failure_kind::auth) {
    st.login_backoff = std::min(max_backoff, std::max(first_backoff, st.login_backoff * 2));
    st.login_blocked_until = clock::now() + st.login_backoff;
    st.login_failure = r.server.code ? r.server.one_line() : r.detail;
    lg::warn("upstream.login_failed",
             {{"session", session},
              {"mailbox", m.address},
              {"upstream", m.smtp->to_string()},
              {"reply", st.login_failure},
              {"retry_in", std::to_string(st.login_backoff.count()) + "s"}});
  }
  client->abort();
  out.failure = std::move(r);
  co_return out;
}

void upstream_pool::release(const conf::mailbox& m, std::unique_ptr<smtp::client> client) {
  if (!client) return;
  if (closed_ || !client->reusable()) {
    client->abort();
    return;
  }
  state(m).idle.push_back({std::move(client), clock::now()});
}

void upstream_pool::close_all() {
  closed_ = true;
  for (auto& [address, st] : states_) {
    for (auto& s : st.idle) s.client->abort();
    st.idle.clear();
  }
  reaper_.cancel();
}

awaitable<void> upstream_pool::reap() {
  auto alive = alive_;
  while (*alive && !closed_) {
    reaper_.expires_after(std::chrono::seconds(1));
    co_await reaper_.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    if (!*alive || closed_) co_return;
    const auto limit = clock::now() - config_.timeouts.upstream_idle;
    for (auto& [address, st] : states_) {
      while (!st.idle.empty() && st.idle.front().since < limit) {
        auto client = std::move(st.idle.front().client);
        st.idle.pop_front();
        co_await client->async_quit();
        if (!*alive) co_return;
      }
    }
  }
}

}  // namespace postern::forwarder
