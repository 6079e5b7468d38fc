// The relay of an established connection: two independent directions, each passing the
// other side's end on as a half-close (TLS close_notify, then FIN) and never cancelling the
// opposite direction on EOF (STYLE.md, rule 4; ghostunnel's copyData/closeWrite).
#include <cstring>

#include <asio/co_spawn.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include "connection.hpp"

namespace postern::tunnel {

using asio::awaitable;
using asio::use_awaitable;

namespace {

/// Per-thread relay buffer: every connection on a thread shares it, because data never
/// stays in it across a suspension (unsent bytes move to a per-connection copy).
constexpr std::size_t scratch_size = 256 * 1024;
/// Bytes one direction may move before it lets other connections of its thread run.
constexpr std::size_t yield_every = 4 * 1024 * 1024;

char* scratch_buffer() {
  thread_local std::unique_ptr<char[]> buffer(new char[scratch_size]);
  return buffer.get();
}

}  // namespace

awaitable<bool> connection::write_through(net::stream_end& to, const char* data, std::size_t n) {
  std::unique_ptr<char[]> held;  // unsent bytes while `to` is not writable
  std::size_t off = 0;
  while (off < n && !stopping_) {
    net::io_result w = to.write(data + off, n - off);
    off += w.n;
    if (w.n > 0) continue;
    if (w.want == net::io_want::none) {
      fail(w.reset ? outcome::reset : outcome::error, w.error);
      stopping_ = true;  // the abort below ends both directions
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
    if (!co_await wait_until(to, w.want)) co_return false;
    last_activity_ = clock::now();
  }
  co_return !stopping_;
}

awaitable<void> connection::pump(net::stream_end& from, net::stream_end& to, std::uint64_t& counter,
                                 std::shared_ptr<connection> self) {
  net::io_result pending;  // an end seen while draining, handled next round
  bool orderly_end = false;
  std::size_t since_yield = 0;
  while (!stopping_) {
    char* scratch = scratch_buffer();
    net::io_result r = pending.ended() ? pending : from.read(scratch, scratch_size);
    pending = {};
    if (r.want != net::io_want::none) {
      if (!co_await wait_until(from, r.want)) break;
      continue;
    }
    if (r.eof) {
      orderly_end = true;
      // Passed on as an end all the same (as stunnel and ghostunnel do), but an end that TLS
      // did not authenticate could have been forged on the path: say so in the summary.
      if (from.ssl() && r.error != "close_notify" && reason_.empty())
        reason_ = "TLS peer closed without close_notify";
      break;
    }
    if (r.failed || r.reset) {
      fail(r.reset ? outcome::reset : outcome::error, r.error);
      break;
    }
    std::size_t n = r.n;
    // TLS returns one record per read: gather what is already here into one write.
    while (from.ssl() && n + 16384 + 256 <= scratch_size) {
      net::io_result more = from.read(scratch + n, scratch_size - n);
      if (more.n == 0) {
        if (more.want == net::io_want::none) pending = more;
        break;
      }
      n += more.n;
    }
    counter += n;
    since_yield += n;
    last_activity_ = clock::now();
    if (!co_await write_through(to, scratch, n)) break;
    if (!stopping_ && !co_await flush_all(to)) {
      stopping_ = true;
      break;
    }
    // A source that never runs dry would keep this thread to itself: let the other
    // connections of the thread run now and then.
    if (since_yield >= yield_every) {
      since_yield = 0;
      co_await asio::post(executor_, use_awaitable);
    }
  }
  if (orderly_end && !stopping_) {
    // Half-close: pass the end on, keep the other direction running.
    for (;;) {
      net::io_result r = to.shutdown_write();
      if (r.want == net::io_want::none || !co_await wait_until(to, r.want)) break;
    }
  } else if (!orderly_end) {
    // An abort in one direction ends both.
    stopping_ = true;
    client_.cancel();
    if (server_) server_->cancel();
  }
  direction_finished();
  (void)self;
}

void connection::direction_finished() {
  if (--open_directions_ == 1 && !stopping_) {
    first_direction_done_ = clock::now();
    phase_ = phase::linger;
    watch();
    return;
  }
  if (open_directions_ == 0) finish();
}

}  // namespace postern::tunnel
