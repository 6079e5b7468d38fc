#include "client_limits.hpp"

#include <algorithm>

namespace postern::forwarder {

const char* client_limits::to_string(verdict v) {
  switch (v) {
    case verdict::admitted: return "admitted";
    case verdict::too_many_sessions: return "max_sessions";
    case verdict::too_many_from_address: return "max_sessions_per_address";
    case verdict::too_many_outside: return "sessions from outside allow";
  }
  return "?";
}

client_limits::ticket::ticket(std::shared_ptr<client_limits> owner, std::string ip, bool allowed)
    : owner_(std::move(owner)), ip_(std::move(ip)), allowed_(allowed) {}

client_limits::ticket::~ticket() { owner_->release(ip_, allowed_); }

std::pair<client_limits::verdict, std::unique_ptr<client_limits::ticket>> client_limits::admit(
    const std::shared_ptr<client_limits>& self, const std::string& ip, bool allowed,
    const limits& l) {
  client_limits& c = *self;
  if (c.total_ >= l.max_sessions) return {verdict::too_many_sessions, nullptr};
  if (!allowed && c.outside_ >= std::max<std::uint32_t>(1, l.max_sessions / 2))
    return {verdict::too_many_outside, nullptr};
  auto& mine = c.per_address_[ip];  // an entry at its limit exists already: nothing to undo
  if (l.max_per_address && mine >= l.max_per_address)
    return {verdict::too_many_from_address, nullptr};
  ++mine;
  ++c.total_;
  if (!allowed) ++c.outside_;
  return {verdict::admitted, std::make_unique<ticket>(self, ip, allowed)};
}

void client_limits::release(const std::string& ip, bool allowed) {
  --total_;
  if (!allowed) --outside_;
  auto it = per_address_.find(ip);
  if (it != per_address_.end() && --it->second == 0) per_address_.erase(it);
}

std::optional<std::chrono::seconds> client_limits::auth_locked(const std::string& ip,
                                                               clock::time_point now) const {
  auto it = auth_.find(ip);
  if (it == auth_.end() || it->second.count < auth_failures_allowed) return std::nullopt;
  const auto until = it->second.last + auth_window;
  if (now >= until) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::seconds>(until - now) + std::chrono::seconds(1);
}

void client_limits::auth_failed(const std::string& ip, clock::time_point now) {
  auto [it, inserted] = auth_.try_emplace(ip);
  failures& f = it->second;
  if (inserted || now - f.last >= auth_window) f = {0, now, now};
  ++f.count;
  f.last = now;
  if (auth_.size() > max_tracked_addresses) {
    // Forget the address whose last failure is oldest (an attack from many addresses must
    // not grow this without bound).
    auto oldest = std::min_element(auth_.begin(), auth_.end(), [](const auto& a, const auto& b) {
      return a.second.last < b.second.last;
    });
    auth_.erase(oldest);
  }
}

}  // namespace postern::forwarder
