#include "tunnel/net/line_channel.hpp"

#include <cstring>

namespace postern::net {

using asio::awaitable;
using net::io_result;
using net::io_want;

namespace {
constexpr std::size_t read_chunk = 64 * 1024;
}

const char* to_string(io_status s) {
  switch (s) {
    case io_status::ok: return "ok";
    case io_status::closed: return "closed";
    case io_status::timeout: return "timeout";
    case io_status::failed: return "failed";
    case io_status::too_long: return "too_long";
  }
  return "?";
}

line_channel::line_channel(const asio::any_io_executor& ex, int fd, int fd_out)
    : line_channel(ex, std::make_unique<stream_end>(ex, fd, fd_out)) {}

line_channel::line_channel(const asio::any_io_executor& ex, std::unique_ptr<byte_stream> stream)
    : stream_(std::move(stream)),
      tls_(stream_->tls_end()),
      deadline_(ex, [this] { stream_->cancel(); }) {}

bool line_channel::attach_tls(tls_ptr<SSL> ssl) {
  if (!tls_ || !ssl) {
    error_ = tls_ ? "cannot create a TLS session" : "this stream cannot carry TLS";
    return false;
  }
  tls_->attach_tls(std::move(ssl));
  return true;
}

std::string line_channel::tls_version() const { return tls_ ? tls_->tls_version() : ""; }
std::string line_channel::tls_cipher() const { return tls_ ? tls_->tls_cipher() : ""; }

line_channel::~line_channel() = default;

awaitable<io_status> line_channel::wait(io_want want) {
  if (!cut_) {
    const bool ready = co_await stream_->wait(want);
    if (ready && !cut_) co_return io_status::ok;
  }
  if (cut_) {
    error_ = "cut";
    co_return io_status::failed;
  }
  if (deadline_.expired()) {
    error_ = "timed out";
    co_return io_status::timeout;
  }
  error_ = "cancelled";
  co_return io_status::failed;
}

awaitable<bool> line_channel::wait_ready(io_want want) {
  last_wait_ = co_await wait(want);
  co_return last_wait_ == io_status::ok;
}

io_status line_channel::failure(const io_result& r) {
  if (r.eof || r.reset) {
    error_ = r.reset ? "connection reset" : "connection closed";
    return io_status::closed;
  }
  error_ = r.error;
  return io_status::failed;
}

void line_channel::consume(std::size_t n) {
  in_pos_ += n;
  if (in_pos_ >= in_end_) in_pos_ = in_end_ = 0;
}

void line_channel::make_room() {
  if (in_cap_ - in_end_ >= read_chunk) return;
  const std::size_t pending = in_end_ - in_pos_;
  if (in_cap_ - pending >= read_chunk) {
    std::memmove(in_.get(), in_.get() + in_pos_, pending);
  } else {
    // Only while a long line is being skipped or a caller keeps unconsumed bytes.
    auto bigger = std::make_unique_for_overwrite<char[]>(pending + read_chunk);
    if (pending) std::memcpy(bigger.get(), in_.get() + in_pos_, pending);
    in_ = std::move(bigger);
    in_cap_ = pending + read_chunk;
  }
  in_pos_ = 0;
  in_end_ = pending;
}

awaitable<io_status> line_channel::read_more(conf::duration timeout) {
  co_return co_await read_more_until(clock::now() + timeout);
}

awaitable<io_status> line_channel::read_more_until(clock::time_point deadline) {
  if (clock::now() >= deadline) {
    error_ = "timed out";
    co_return io_status::timeout;
  }
  make_room();
  deadline_.arm(deadline);
  io_status status = io_status::ok;
  std::size_t got = 0;
  for (;;) {
    io_result r = stream_->read(in_.get() + in_end_, in_cap_ - in_end_);
    in_end_ += r.n;
    got += r.n;
    bytes_in += r.n;
    // Take every TLS record already in memory, up to the room there is: one wake-up per
    // socket read rather than one per 16 KiB record. An end seen after some bytes is
    // reported by the next call.
    if (r.n > 0 && in_end_ < in_cap_ && stream_->read_buffered()) continue;
    if (got > 0) break;
    if (r.ended()) {
      status = failure(r);
      break;
    }
    status = co_await wait(r.want == io_want::none ? io_want::read : r.want);
    if (status != io_status::ok) break;
  }
  deadline_.disarm();
  co_return status;
}

awaitable<io_status> line_channel::read_line(std::string& line, std::size_t max,
                                             conf::duration timeout) {
  co_return co_await read_line_until(line, max, clock::now() + timeout);
}

awaitable<io_status> line_channel::read_line_until(std::string& line, std::size_t max,
                                                   clock::time_point deadline) {
  bool overflow = false;
  for (;;) {
    std::string_view data = buffered();
    auto nl = data.find('\n');
    if (nl != std::string_view::npos) {
      std::size_t len = nl > 0 && data[nl - 1] == '\r' ? nl - 1 : nl;
      if (!overflow && len <= max) line.assign(data.substr(0, len));
      consume(nl + 1);
      co_return overflow || len > max ? io_status::too_long : io_status::ok;
    }
    if (data.size() > max) {
      // Drop what is surely too long, keep reading to find where the line ends.
      overflow = true;
      consume(data.size());
    }
    io_status s = co_await read_more_until(deadline);
    if (s != io_status::ok) co_return s;
  }
}

awaitable<io_status> line_channel::flush(conf::duration timeout) {
  if (out_.empty() && !(tls_ && tls_->ssl())) co_return io_status::ok;
  deadline_.arm_after(timeout);
  io_status status = io_status::ok;
  std::size_t off = 0;
  while (off < out_.size()) {
    io_result r = stream_->write(out_.data() + off, out_.size() - off);
    off += r.n;
    bytes_out += r.n;
    if (r.failed || r.reset) {
      status = failure(r);
      break;
    }
    if (r.want != io_want::none) {
      status = co_await wait(r.want);
      if (status != io_status::ok) break;
    }
  }
  while (status == io_status::ok) {
    io_result f = stream_->flush();
    if (f.failed || f.reset) {
      status = failure(f);
      break;
    }
    if (f.want == io_want::none) break;
    status = co_await wait(f.want);
  }
  out_.clear();
  deadline_.disarm();
  co_return status;
}

awaitable<io_status> line_channel::handshake(conf::duration timeout) {
  if (!tls_) {
    error_ = "this stream cannot carry TLS";
    co_return io_status::failed;
  }
  deadline_.arm_after(timeout);
  io_status status = io_status::ok;
  const handshake_end h =
      co_await drive_handshake(*tls_, [this](io_want want) { return wait_ready(want); });
  if (h.outcome == handshake_end::how::stopped) status = last_wait_;
  if (h.outcome == handshake_end::how::failed) {
    status = failure(h.last);
    if (status == io_status::closed) error_ = "connection closed during the TLS handshake";
    if (error_.empty()) error_ = "TLS handshake failed";
  }
  deadline_.disarm();
  co_return status;
}

awaitable<line_channel::tls_outcome> line_channel::start_client_tls(net::tls_context& tls,
                                                                    const conf::address& target,
                                                                    conf::duration timeout) {
  tls_outcome out;
  if (!attach_tls(tls.new_client(target.host, target.to_string()))) {
    out.status = io_status::failed;
    out.error = error_;
    co_return out;
  }
  out.status = co_await handshake(timeout);
  if (out.status != io_status::ok) {
    out.error = "TLS handshake with " + target.to_string() + ": " + error_;
    co_return out;
  }
  out.verdict = tls.check_peer(tls_->ssl());
  out.verified = out.verdict.ok;
  if (!out.verified) out.error = out.verdict.reason;
  co_return out;
}

bool line_channel::peer_gone() {
  // An idle SMTP server sends nothing; any bytes (a 421, a TLS close_notify) or an EOF
  // mean it is ending the session.
  if (!buffered().empty()) return true;
  char byte;
  io_result r = stream_->peek(&byte, 1);
  return r.ended() || r.n > 0;
}

void line_channel::cut() {
  cut_ = true;
  stream_->cancel();
}

void line_channel::close() {
  deadline_.disarm();
  stream_->close();
}

}  // namespace postern::net
