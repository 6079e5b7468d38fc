#pragma once
/// The one deadline helper: a point in time after which `on_expiry` runs, once, on the
/// timer's executor. What it does is the owner's: cancel a stream's waits (the line channel),
/// close a socket being connected (connect), kill a child (child_process), or look again at a
/// deadline that slides with activity (the tunnel's idle timeout). Arming again moves it;
/// disarm() stops it; a stale expiry (a wait that had already finished when the deadline was
/// moved) never runs, and the owner may be destroyed while it is armed.

#include <chrono>
#include <functional>
#include <memory>

#include <asio/any_io_executor.hpp>
#include <asio/steady_timer.hpp>

#include "conf/units.hpp"

namespace postern::net {

class deadline {
 public:
  using clock = std::chrono::steady_clock;

  deadline(const asio::any_io_executor& ex, std::function<void()> on_expiry);
  ~deadline();
  deadline(const deadline&) = delete;
  deadline& operator=(const deadline&) = delete;

  void arm(clock::time_point at);
  void arm_after(conf::duration d) { arm(clock::now() + d); }
  void disarm();
  /// The deadline passed since it was last armed (on_expiry has run).
  [[nodiscard]] bool expired() const { return state_->expired; }
  [[nodiscard]] bool armed() const { return state_->armed; }
  [[nodiscard]] clock::time_point at() const { return state_->at; }

 private:
  struct state {
    std::function<void()> on_expiry;
    unsigned generation = 0;
    bool armed = false;
    bool expired = false;
    clock::time_point at{};
  };
  std::shared_ptr<state> state_;
  asio::steady_timer timer_;
};

}  // namespace postern::net
