#pragma once
/// What one client address may take of the forwarder, kept across reloads: sessions (in all,
/// per address, and from outside `allow`, so allowed mail servers always find room) and
/// failed AUTH attempts (each refusal is delayed; an address that keeps failing is locked
/// out for a while). Pure bookkeeping, no I/O; one per server, shared by its sessions.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace postern::forwarder {

class client_limits {
 public:
  using clock = std::chrono::steady_clock;

  /// Failed logins an address may have within `auth_window` before it is locked out.
  static constexpr int auth_failures_allowed = 10;
  static constexpr std::chrono::minutes auth_window{15};
  /// How long each refused AUTH waits before its 535: guessing costs time, the loop none.
  static constexpr std::chrono::seconds auth_failure_delay{1};
  /// Addresses remembered for AUTH failures; the oldest are forgotten beyond this.
  static constexpr std::size_t max_tracked_addresses = 10000;

  enum class verdict { admitted, too_many_sessions, too_many_from_address, too_many_outside };
  static const char* to_string(verdict v);

  struct limits {
    std::uint32_t max_sessions = 100;
    std::uint32_t max_per_address = 20;  ///< 0 = no per-address limit
  };

  /// Holds one admitted session; releases it when destroyed.
  class ticket {
   public:
    ticket(std::shared_ptr<client_limits> owner, std::string ip, bool allowed);
    ~ticket();
    ticket(const ticket&) = delete;
    ticket& operator=(const ticket&) = delete;

   private:
    std::shared_ptr<client_limits> owner_;
    std::string ip_;
    bool allowed_;
  };

  /// Counts a new session of `ip` when the limits allow it. Sessions from outside `allow`
  /// (AUTH only) may hold at most half of max_sessions.
  static std::pair<verdict, std::unique_ptr<ticket>> admit(
      const std::shared_ptr<client_limits>& self, const std::string& ip, bool allowed,
      const limits& l);

  [[nodiscard]] std::uint32_t sessions() const { return total_; }

  /// When `ip` may not try AUTH now: how long until it may.
  [[nodiscard]] std::optional<std::chrono::seconds> auth_locked(const std::string& ip,
                                                                clock::time_point now) const;
  void auth_failed(const std::string& ip, clock::time_point now);

 private:
  void release(const std::string& ip, bool allowed);

  std::uint32_t total_ = 0;
  std::uint32_t outside_ = 0;
  std::map<std::string, std::uint32_t> per_address_;
  struct failures {
    int count = 0;
    clock::time_point first, last;
  };
  std::map<std::string, failures> auth_;
};

}  // namespace postern::forwarder
