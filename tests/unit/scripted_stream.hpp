#pragma once
// A byte stream that plays a script instead of a socket (Boost.Beast's test stream is the
// model): each scripted chunk is what one read returns, and a test can make the Nth operation
// fail, stall the reads (until the reader's deadline cancels them), or end the input at byte k.
// Everything written is kept for the test to compare with the dialogue it expects.
#include <chrono>
#include <cstring>
#include <deque>
#include <limits>
#include <memory>
#include <string>

#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "tunnel/net/byte_stream.hpp"

namespace postern::test {

class scripted_stream final : public net::byte_stream {
 public:
  explicit scripted_stream(const asio::any_io_executor& ex) : timer_(ex) {}

  /// The next read returns these bytes (a short buffer gets them over several reads).
  scripted_stream& then_read(std::string bytes) {
    script_.push_back({step::data, std::move(bytes)});
    return *this;
  }
  /// Reads wait here until cancelled (the reader's deadline); an empty script stalls too.
  scripted_stream& then_stall() {
    script_.push_back({step::stall, {}});
    return *this;
  }
  scripted_stream& then_eof() {
    script_.push_back({step::eof, {}});
    return *this;
  }
  /// Operation number `n` (reads and writes counted together, from 1) fails as a reset.
  scripted_stream& fail_operation(std::size_t n) {
    fail_at_ = n;
    return *this;
  }
  /// The input ends (EOF) once `k` bytes have been read, whatever the script holds after.
  scripted_stream& eof_at(std::size_t k) {
    eof_at_ = k;
    return *this;
  }

  [[nodiscard]] const std::string& written() const { return seen_->written; }
  [[nodiscard]] std::size_t operations() const { return operations_; }
  [[nodiscard]] bool closed() const { return seen_->closed; }

  /// What the peer saw, kept for the test after the stream is gone (its owner may destroy it
  /// when the connection is dropped).
  struct record {
    std::string written;
    bool closed = false;
  };
  [[nodiscard]] std::shared_ptr<const record> seen() const { return seen_; }

  net::io_result read(char* buf, std::size_t len) override { return take(buf, len, true); }
  net::io_result peek(char* buf, std::size_t len) override { return take(buf, len, false); }

  net::io_result write(const char* buf, std::size_t len) override {
    net::io_result r;
    if (closed_ || ++operations_ == fail_at_) {
      r.reset = true;
      r.error = "connection reset (scripted)";
      return r;
    }
    seen_->written.append(buf, len);
    r.n = len;
    return r;
  }

  asio::awaitable<bool> wait(net::io_want want) override {
    if (closed_) co_return false;
    if (want == net::io_want::write || !stalled()) co_return true;
    timer_.expires_after(std::chrono::hours(24));
    auto [ec] = co_await timer_.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    co_return !ec && !closed_;
  }
  void cancel() override { timer_.cancel(); }
  void close() override {
    closed_ = true;
    seen_->closed = true;
    timer_.cancel();
  }

 private:
  enum class step { data, stall, eof };
  struct entry {
    step what;
    std::string bytes;
  };

  [[nodiscard]] bool stalled() const {
    return script_.empty() ? read_ < eof_at_ : script_.front().what == step::stall;
  }

  net::io_result take(char* buf, std::size_t len, bool consume) {
    net::io_result r;
    if (closed_) {
      r.failed = true;
      r.error = "closed";
      return r;
    }
    if (consume && ++operations_ == fail_at_) {
      r.reset = true;
      r.error = "connection reset (scripted)";
      return r;
    }
    if (read_ >= eof_at_ || (!script_.empty() && script_.front().what == step::eof)) {
      r.eof = true;
      return r;
    }
    if (stalled()) {
      r.want = net::io_want::read;
      return r;
    }
    entry& e = script_.front();
    std::size_t n = std::min({len, e.bytes.size(), eof_at_ - read_});
    std::memcpy(buf, e.bytes.data(), n);
    r.n = n;
    if (!consume) return r;
    read_ += n;
    e.bytes.erase(0, n);
    if (e.bytes.empty()) script_.pop_front();
    return r;
  }

  asio::steady_timer timer_;
  std::deque<entry> script_;
  std::shared_ptr<record> seen_ = std::make_shared<record>();
  std::size_t operations_ = 0;
  std::size_t fail_at_ = 0;
  std::size_t read_ = 0;
  std::size_t eof_at_ = std::numeric_limits<std::size_t>::max();
  bool closed_ = false;
};

}  // namespace postern::test
