#pragma once
/// A line-oriented byte channel over one socket (plain or TLS) for SMTP: buffered reads
/// with a line bound, batched writes, and a deadline on every wait. Both the forwarder's
/// server sessions and its upstream client use it.

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <asio/awaitable.hpp>

#include "conf/endpoint.hpp"
#include "conf/units.hpp"
#include "tunnel/net/deadline.hpp"
#include "tunnel/net/stream_end.hpp"
#include "tunnel/net/tls_context.hpp"

namespace postern::net {

enum class io_status { ok, closed, timeout, failed, too_long };

class line_channel;
/// Makes a connected channel; null + error on failure.
using channel_source =
    std::function<asio::awaitable<std::unique_ptr<line_channel>>(std::string& error)>;
const char* to_string(io_status s);

class line_channel {
 public:
  using clock = std::chrono::steady_clock;

  /// Takes ownership of `fd` (a connected socket, or stdin/stdout for --sendmail).
  line_channel(const asio::any_io_executor& ex, int fd, int fd_out = -1);
  /// Over another byte stream (a scripted one in tests); TLS needs a stream_end.
  line_channel(const asio::any_io_executor& ex, std::unique_ptr<byte_stream> stream);
  ~line_channel();
  line_channel(const line_channel&) = delete;
  line_channel& operator=(const line_channel&) = delete;

  /// Reads one line (without CRLF or LF) into `line`; `timeout` bounds the whole line, not
  /// the gap between two reads (a client sending a byte now and then is cut all the same).
  /// A line longer than `max` is consumed up to its end and reported as too_long.
  asio::awaitable<io_status> read_line(std::string& line, std::size_t max, conf::duration timeout);
  /// The same, with a deadline shared by several lines (a multi-line reply, a listing).
  asio::awaitable<io_status> read_line_until(std::string& line, std::size_t max,
                                             clock::time_point deadline);
  /// Reads more bytes into the buffer (at least one unless closed/failed/timeout).
  asio::awaitable<io_status> read_more(conf::duration timeout);
  asio::awaitable<io_status> read_more_until(clock::time_point deadline);
  /// Bytes read but not yet consumed.
  [[nodiscard]] std::string_view buffered() const {
    return {in_.get() + in_pos_, in_end_ - in_pos_};
  }
  void consume(std::size_t n);

  /// Queues bytes; nothing is sent until flush().
  void queue(std::string_view data) { out_ += data; }
  std::string& out_buffer() { return out_; }
  [[nodiscard]] std::size_t queued() const { return out_.size(); }
  asio::awaitable<io_status> flush(conf::duration timeout);

  /// Runs the TLS handshake after attach_tls (either side).
  asio::awaitable<io_status> handshake(conf::duration timeout);

  /// Client side: TLS to `target` (verified name and SNI from it, session resumed per
  /// target), handshake, then pins and identity checks. `error` says what failed.
  struct tls_outcome {
    io_status status = io_status::ok;
    bool verified = false;  ///< handshake done and the peer passed every check
    net::peer_verdict verdict;
    std::string error;
  };
  asio::awaitable<tls_outcome> start_client_tls(net::tls_context& tls, const conf::address& target,
                                                conf::duration timeout);
  /// Puts server-side (or client-side) TLS on the stream; then handshake().
  bool attach_tls(tls_ptr<SSL> ssl);
  [[nodiscard]] std::string tls_version() const;
  [[nodiscard]] std::string tls_cipher() const;
  /// The TLS connection once attach_tls ran (its certificates: peer_certificates.hpp).
  [[nodiscard]] SSL* tls_session() const { return tls_ ? tls_->ssl() : nullptr; }

  /// True when the peer has closed or sent something unexpected while we were not reading
  /// (used before reusing an idle upstream session).
  bool peer_gone();
  void close();
  /// Ends the channel's use now (shutdown): the wait under way and every later one fail at
  /// once ("cut"); what is queued may still be written if the socket takes it without waiting.
  void cut();
  /// What failed last, for logs (never contains data from the stream).
  [[nodiscard]] const std::string& error() const { return error_; }

  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;

 private:
  asio::awaitable<io_status> wait(net::io_want want);
  /// wait() for drive_handshake: true when ready, the status kept in last_wait_.
  asio::awaitable<bool> wait_ready(net::io_want want);
  io_status failure(const net::io_result& r);
  void make_room();

  std::unique_ptr<byte_stream> stream_;
  stream_end* tls_;    ///< stream_ when it can carry TLS, else null
  deadline deadline_;  ///< bounds every wait: when it passes, the stream's waits are cancelled
  // Read buffer: [in_pos_, in_end_) is unconsumed. Not a std::string, whose resize would
  // zero the room for every read.
  bool cut_ = false;
  io_status last_wait_ = io_status::ok;
  std::unique_ptr<char[]> in_;
  std::size_t in_cap_ = 0, in_pos_ = 0, in_end_ = 0;
  std::string out_;
  std::string error_;
};

}  // namespace postern::net
