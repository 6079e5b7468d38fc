#include "relay.hpp"

#include <cstring>

#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include "connection.hpp"

namespace postern::tunnel {

using asio::awaitable;

namespace {

/// Per-thread relay buffer: every connection on a thread shares it, because data never
/// stays in it across a suspension (unsent bytes move to a per-direction copy).
constexpr std::size_t scratch_size = 256 * 1024;
/// Bytes one direction may move before it lets other connections of its thread run.
constexpr std::size_t yield_every = 4 * 1024 * 1024;

char* scratch_buffer() {
  thread_local std::unique_ptr<char[]> buffer(new char[scratch_size]);
  return buffer.get();
}

}  // namespace

awaitable<bool> relay_direction::write_through(const char* data, std::size_t n) {
  std::unique_ptr<char[]> held;  // unsent bytes while `to` is not writable
  std::size_t off = 0;
  while (off < n && !host_.stopping()) {
    net::io_result w = to_.write(data + off, n - off);
    off += w.n;
    if (w.n > 0) continue;
    if (w.want == net::io_want::none) {
      host_.abort(w.reset ? outcome::reset : outcome::error, w.error);
      co_return false;
    }
    if (!held) {
      // The shared scratch buffer is another connection's once this one suspends.
      held.reset(new char[n - off]);
      std::memcpy(held.get(), data + off, n - off);
      data = held.get();
      n -= off;
      off = 0;
    }
    if (!co_await host_.wait_until(to_, w.want)) co_return false;
    host_.active();
  }
  co_return !host_.stopping();
}

awaitable<bool> relay_direction::flush() {
  for (;;) {
    net::io_result f = to_.flush();
    if (f.failed || f.reset) {
      host_.abort(f.reset ? outcome::reset : outcome::error, f.error);
      co_return false;
    }
    if (f.want == net::io_want::none) co_return true;
    if (!co_await host_.wait_until(to_, f.want)) co_return false;
  }
}

awaitable<void> relay_direction::pass_end() {
  for (;;) {
    net::io_result r = to_.shutdown_write();
    if (r.want == net::io_want::none || !co_await host_.wait_until(to_, r.want)) break;
  }
}

awaitable<void> relay_direction::run(std::shared_ptr<void> keep) {
  net::io_result pending;  // an end seen while gathering, handled next round
  bool orderly_end = false;
  std::size_t since_yield = 0;
  while (!host_.stopping()) {
    char* scratch = scratch_buffer();
    net::io_result r = pending.ended() ? pending : from_.read(scratch, scratch_size);
    pending = {};
    if (r.want != net::io_want::none) {
      if (!co_await host_.wait_until(from_, r.want)) break;
      continue;
    }
    if (r.eof) {
      orderly_end = true;
      // Passed on as an end all the same (as stunnel and ghostunnel do), but an end that TLS
      // did not authenticate could have been forged on the path: say so in the summary.
      if (from_.ssl() && r.error != "close_notify")
        host_.remark("TLS peer closed without close_notify");
      break;
    }
    if (r.failed || r.reset) {
      host_.abort(r.reset ? outcome::reset : outcome::error, r.error);
      break;
    }
    std::size_t n = r.n;
    // TLS returns one record per read: gather what is already here into one write.
    while (from_.ssl() && n + 16384 + 256 <= scratch_size) {
      net::io_result more = from_.read(scratch + n, scratch_size - n);
      if (more.n == 0) {
        if (more.want == net::io_want::none) pending = more;
        break;
      }
      n += more.n;
    }
    bytes_ += n;
    since_yield += n;
    host_.active();
    if (!co_await write_through(scratch, n)) break;
    if (!host_.stopping() && !co_await flush()) break;
    // A source that never runs dry would keep this thread to itself: let the other
    // connections of the thread run now and then.
    if (since_yield >= yield_every) {
      since_yield = 0;
      co_await asio::post(executor_, asio::use_awaitable);
    }
  }
  if (orderly_end && !host_.stopping())
    co_await pass_end();  // the other direction keeps running
  else if (!orderly_end)
    host_.stop_both();  // an abort in one direction ends both
  host_.direction_done();
  (void)keep;
}

}  // namespace postern::tunnel
