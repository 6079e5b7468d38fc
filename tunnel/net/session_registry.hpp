#pragma once
/// The sessions a server runs, whichever configuration they started with: counted for the
/// drain, and cut when the grace period is over, so that every one still ends the way it
/// always does, with its summary line (the tunnel's conn.end, the forwarder's session.end).
/// Thread-safe: the tunnel's connections run on several worker loops.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <asio/awaitable.hpp>

#include "conf/units.hpp"

namespace postern::net {

class session_registry {
 public:
  /// Ends a session: called on the thread that cuts, so it hands the work to the session's
  /// own executor when that is another thread (a weak handle, then post).
  using cutter = std::function<void(const std::string& reason)>;

  /// A session's place in the registry, given back when it goes.
  class membership {
   public:
    membership(session_registry& r, std::uint64_t id) : registry_(r), id_(id) {}
    ~membership() { registry_.leave(id_); }
    membership(const membership&) = delete;
    membership& operator=(const membership&) = delete;

   private:
    session_registry& registry_;
    std::uint64_t id_;
  };

  [[nodiscard]] std::unique_ptr<membership> join(cutter cut);
  [[nodiscard]] std::size_t size() const;
  /// Cuts every session still running with `reason`; returns how many there were.
  std::size_t cut_all(const std::string& reason);

 private:
  void leave(std::uint64_t id);

  mutable std::mutex mutex_;
  std::map<std::uint64_t, cutter> sessions_;
  std::uint64_t next_ = 0;
};

/// How a drain ended.
struct drain_result {
  std::size_t cut = 0;   ///< sessions still running when the grace period ended, then cut
  std::size_t left = 0;  ///< ... of which this many had not ended `cut_wait` after the cut
};

/// How long cut sessions get to end and log their lines before the loop stops regardless.
inline constexpr std::chrono::seconds cut_wait{5};

/// The end of a server: waits until no session is left or `grace` has passed, then cuts the
/// sessions left (reason "shutdown: grace period expired") and waits up to `cut_wait` for
/// them to log their lines. Looks every 50 ms.
asio::awaitable<drain_result> async_drain(session_registry& sessions, conf::duration grace,
                                          conf::duration cut_wait = net::cut_wait);

}  // namespace postern::net
