#pragma once
/// One direction of an established connection's relay: what `from` sends is written to `to`,
/// a batch per read (TLS records already in memory gathered into one write); the source's
/// orderly end is passed on as a half-close (TLS close_notify, then FIN) and never cancels
/// the opposite direction (STYLE.md, rule 4; ghostunnel's copyData/closeWrite). Any other
/// end stops the whole connection. The connection is its relay_host: it owns the deadlines,
/// the outcome and the summary line.

#include <cstdint>
#include <memory>
#include <string>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "tunnel/net/stream_end.hpp"

namespace postern::tunnel {

enum class outcome;

/// What a relay direction needs of its connection.
class relay_host {
 public:
  [[nodiscard]] virtual bool stopping() const = 0;
  /// Waits until `end` is ready, within the connection's deadline; false when it must stop.
  virtual asio::awaitable<bool> wait_until(net::stream_end& end, net::io_want want) = 0;
  /// Ends the connection: `o` and `reason` (unless one was recorded first), both directions.
  virtual void abort(outcome o, const std::string& reason) = 0;
  /// Stops both directions; the outcome is what was recorded.
  virtual void stop_both() = 0;
  /// A remark for the summary line, unless there is one.
  virtual void remark(const std::string& text) = 0;
  /// Bytes moved: the idle deadline starts again.
  virtual void active() = 0;
  /// This direction is over.
  virtual void direction_done() = 0;

 protected:
  ~relay_host() = default;
};

class relay_direction {
 public:
  relay_direction(relay_host& host, asio::any_io_executor ex, net::stream_end& from,
                  net::stream_end& to)
      : host_(host), executor_(std::move(ex)), from_(from), to_(to) {}

  /// Moves bytes until an end, then tells the host. `keep` holds the connection alive.
  asio::awaitable<void> run(std::shared_ptr<void> keep);
  [[nodiscard]] std::uint64_t bytes() const { return bytes_; }

 private:
  /// Writes one batch; false when the connection is over.
  asio::awaitable<bool> write_through(const char* data, std::size_t n);
  asio::awaitable<bool> flush();
  /// The orderly end passed on: close_notify, then FIN.
  asio::awaitable<void> pass_end();

  relay_host& host_;
  asio::any_io_executor executor_;
  net::stream_end& from_;
  net::stream_end& to_;
  std::uint64_t bytes_ = 0;
};

}  // namespace postern::tunnel
