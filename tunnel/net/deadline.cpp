#include "tunnel/net/deadline.hpp"

namespace postern::net {

deadline::deadline(const asio::any_io_executor& ex, std::function<void()> on_expiry)
    : state_(std::make_shared<state>()), timer_(ex) {
  state_->on_expiry = std::move(on_expiry);
}

deadline::~deadline() {
  state_->on_expiry = nullptr;
  ++state_->generation;
}

void deadline::arm(clock::time_point at) {
  state& s = *state_;
  s.expired = false;
  s.armed = true;
  s.at = at;
  timer_.expires_at(at);
  // The handler may run after the owner is gone, or after a new arm() (it was already queued
  // when the timer was moved): the weak state and the generation keep it from acting then.
  timer_.async_wait(
      [weak = std::weak_ptr<state>(state_), gen = ++s.generation](std::error_code ec) {
        auto st = weak.lock();
        if (ec || !st || gen != st->generation || !st->on_expiry) return;
        st->armed = false;
        st->expired = true;
        st->on_expiry();
      });
}

void deadline::disarm() {
  ++state_->generation;
  state_->armed = false;
  timer_.cancel();
}

}  // namespace postern::net
