#pragma once
/// One end of a tunnelled connection: a non-blocking descriptor (a socket, or stdin/stdout)
/// with TLS optionally on top. I/O calls never block; they say which readiness to wait for.
/// BoringSSL runs directly on the socket, so no per-connection buffers exist while idle.

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

#include <asio/awaitable.hpp>
#include <asio/posix/stream_descriptor.hpp>

#include "tunnel/net/byte_stream.hpp"
#include "tunnel/net/socket_bio.hpp"
#include "tunnel/net/tls_context.hpp"
#include "tunnel/net/tls_types.hpp"

namespace postern::net {

class stream_end final : public byte_stream {
 public:
  /// Takes ownership of `fd_in` and, when different and >= 0, of `fd_out`.
  stream_end(const asio::any_io_executor& ex, int fd_in, int fd_out = -1);
  stream_end(const stream_end&) = delete;
  stream_end& operator=(const stream_end&) = delete;

  /// Puts TLS on this end (sockets only); the SSL is driven on the descriptor itself.
  void attach_tls(tls_ptr<SSL> ssl);
  [[nodiscard]] SSL* ssl() const { return ssl_.get(); }

  io_result read(char* buf, std::size_t len) override;
  /// True when a read would return TLS plaintext without a system call (more records are
  /// already in memory); always false for plain descriptors.
  [[nodiscard]] bool read_buffered() const override;
  io_result write(const char* buf, std::size_t len) override;
  /// Drives the TLS handshake one step.
  io_result handshake();
  /// After a server handshake: BoringSSL queues the TLS 1.3 session tickets until the first
  /// write; sending them now acknowledges the client's Finished at once (a client with Nagle
  /// on would otherwise hold its first request back for a delayed ACK, 40 ms on Linux).
  void send_session_tickets();
  /// Why the failed handshake step `r` failed, in words (see explain_handshake_failure).
  [[nodiscard]] handshake_failure explain_failure(const io_result& r) const;
  /// The failed step `r` was the peer's certificate failing verification.
  [[nodiscard]] static bool verify_failed(const io_result& r);
  [[nodiscard]] bool is_server() const;
  /// The handshake resumed a session.
  [[nodiscard]] bool resumed() const;
  /// Sends what TLS has buffered; call after a batch of writes (want = write: wait, retry).
  io_result flush() override;
  /// Ends our sending direction: TLS close_notify then FIN (or closes a pipe).
  io_result shutdown_write();
  /// Peeks at bytes without consuming them (plain sockets; for the PROXY header).
  io_result peek(char* buf, std::size_t len) override;

  /// Waits until the descriptor is ready; false when cancelled or closed.
  asio::awaitable<bool> wait(io_want want) override;
  void cancel() override;
  void close() override;
  stream_end* tls_end() override { return this; }

  /// "TLSv1.3", cipher name, or "" for plain ends.
  [[nodiscard]] std::string tls_version() const;
  [[nodiscard]] std::string tls_cipher() const;
  /// The negotiated ALPN protocol, or "".
  [[nodiscard]] std::string alpn() const;

 private:
  io_result tls_result(int ret, const char* what);
  asio::posix::stream_descriptor& out() { return out_ ? *out_ : in_; }

  asio::posix::stream_descriptor in_;
  std::optional<asio::posix::stream_descriptor> out_;
  std::unique_ptr<socket_bio> bio_;  ///< declared before ssl_: the SSL's BIO points into it
  tls_ptr<SSL> ssl_;
  bool is_socket_ = false;
  bool close_notify_sent_ = false;
  bool write_shut_ = false;
};

/// How a handshake driven by drive_handshake ended.
struct handshake_end {
  enum class how { done, failed, stopped };
  how outcome = how::done;
  io_result last;  ///< failed: the step that failed (explain_failure, verify_failed)
};

/// The TLS handshake's one loop, over any way of waiting: `wait(want)` returns an awaitable
/// bool, false when the wait was cut (a deadline, a cancel). A server end sends its session
/// tickets once done.
template <class Wait>
asio::awaitable<handshake_end> drive_handshake(stream_end& end, Wait wait) {
  handshake_end result;
  for (;;) {
    result.last = end.handshake();
    if (result.last.n == 1) {
      if (end.is_server()) end.send_session_tickets();
      co_return result;
    }
    if (result.last.want == io_want::none) {
      result.outcome = handshake_end::how::failed;
      co_return result;
    }
    if (!co_await wait(result.last.want)) {
      result.outcome = handshake_end::how::stopped;
      co_return result;
    }
  }
}

}  // namespace postern::net
