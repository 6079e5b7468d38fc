#pragma once
/// A BoringSSL BIO over a non-blocking socket that batches system calls: reads take up to
/// 256 KiB at once and feed TLS records from memory; written records collect in memory and
/// go out in one write on flush(). Buffers come from the per-thread pool and go back when
/// empty. BoringSSL's own socket BIO reads each record in two calls and writes each record
/// in one, which costs several times more system calls per byte.

#include <cstddef>

#include "tls_types.hpp"

namespace postern::net {

class socket_bio {
 public:
  explicit socket_bio(int fd) : fd_(fd) {}
  socket_bio(const socket_bio&) = delete;
  socket_bio& operator=(const socket_bio&) = delete;
  ~socket_bio();

  /// A new BIO reading and writing through this object (which must outlive it).
  tls_ptr<BIO> make_bio();

  enum class flush_result { done, would_block, failed };
  /// Writes what is buffered; `failed` leaves errno set.
  flush_result flush();
  [[nodiscard]] bool has_pending_output() const { return wlen_ > wpos_; }
  /// Bytes read from the socket that TLS has not consumed yet.
  [[nodiscard]] bool has_buffered_input() const { return rlen_ > rpos_; }

 private:
  static int on_read(BIO* bio, char* out, int len);
  static int on_write(BIO* bio, const char* in, int len);
  static long on_ctrl(BIO* bio, int cmd, long larg, void* parg);
  static const BIO_METHOD* method();
  void release_read_buffer();
  void release_write_buffer();

  int fd_;
  char* rbuf_ = nullptr;
  std::size_t rpos_ = 0, rlen_ = 0;
  char* wbuf_ = nullptr;
  std::size_t wpos_ = 0, wlen_ = 0;
};

}  // namespace postern::net
