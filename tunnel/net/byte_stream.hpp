#pragma once
/// What the line channel reads from and writes to: a non-blocking byte stream whose calls
/// never block and say which readiness to wait for. stream_end is the real one (a descriptor,
/// TLS optionally on top); tests script their own (tests/unit/scripted_stream.hpp).

#include <cstddef>
#include <string>

#include <asio/awaitable.hpp>

namespace postern::net {

enum class io_want { none, read, write };

struct io_result {
  std::size_t n = 0;
  io_want want = io_want::none;
  bool eof = false;    ///< orderly end (FIN, or TLS close_notify / truncation)
  bool reset = false;  ///< the peer aborted (ECONNRESET, EPIPE)
  bool failed = false;
  std::string error;   ///< when failed
  int tls_reason = 0;  ///< BoringSSL's reason code (SSL_R_*) of a TLS failure, 0 if none

  /// The stream is over, orderly or not: nothing more will be read from it.
  [[nodiscard]] bool ended() const { return eof || reset || failed; }
};

class stream_end;

class byte_stream {
 public:
  virtual ~byte_stream() = default;
  virtual io_result read(char* buf, std::size_t len) = 0;
  /// True when a read would return data without a system call (TLS records in memory).
  [[nodiscard]] virtual bool read_buffered() const { return false; }
  virtual io_result write(const char* buf, std::size_t len) = 0;
  /// Sends what is buffered below the caller (TLS records); want = write: wait, retry.
  virtual io_result flush() { return {}; }
  /// Bytes that a read would return, without consuming them.
  virtual io_result peek(char* buf, std::size_t len) = 0;
  /// Waits until the stream is ready; false when cancelled or closed.
  virtual asio::awaitable<bool> wait(io_want want) = 0;
  virtual void cancel() = 0;
  virtual void close() = 0;
  /// The descriptor end that can carry TLS, or null (a scripted stream cannot).
  virtual stream_end* tls_end() { return nullptr; }
};

}  // namespace postern::net
