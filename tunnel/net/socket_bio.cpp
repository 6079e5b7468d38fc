#include "tunnel/net/socket_bio.hpp"

#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>

#include "tunnel/net/buffer_pool.hpp"

namespace postern::net {

namespace {
socket_bio* self_of(BIO* bio) { return static_cast<socket_bio*>(BIO_get_data(bio)); }
}  // namespace

socket_bio::~socket_bio() {
  release_read_buffer();
  release_write_buffer();
}

const BIO_METHOD* socket_bio::method() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* meth = BIO_meth_new(BIO_TYPE_SOURCE_SINK | 0x7f, "postern socket");
    BIO_meth_set_read(meth, &socket_bio::on_read);
    BIO_meth_set_write(meth, &socket_bio::on_write);
    BIO_meth_set_ctrl(meth, &socket_bio::on_ctrl);
    return meth;
  }();
  return m;
}

tls_ptr<BIO> socket_bio::make_bio() {
  tls_ptr<BIO> bio(BIO_new(method()));
  BIO_set_data(bio.get(), this);
  BIO_set_init(bio.get(), 1);
  return bio;
}

void socket_bio::release_read_buffer() {
  if (rbuf_) buffer_pool::put(rbuf_);
  rbuf_ = nullptr;
  rpos_ = rlen_ = 0;
}

void socket_bio::release_write_buffer() {
  if (wbuf_) buffer_pool::put(wbuf_);
  wbuf_ = nullptr;
  wpos_ = wlen_ = 0;
}

int socket_bio::on_read(BIO* bio, char* out, int len) {
  socket_bio* s = self_of(bio);
  BIO_clear_retry_flags(bio);
  if (s->rpos_ == s->rlen_) {
    if (!s->rbuf_) s->rbuf_ = buffer_pool::get();
    ssize_t n;
    do {
      n = ::read(s->fd_, s->rbuf_, buffer_pool::block_size);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
      int saved = errno;
      s->release_read_buffer();
      errno = saved;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(bio);
      return static_cast<int>(n);
    }
    s->rpos_ = 0;
    s->rlen_ = static_cast<std::size_t>(n);
  }
  std::size_t take = std::min(static_cast<std::size_t>(len), s->rlen_ - s->rpos_);
  std::memcpy(out, s->rbuf_ + s->rpos_, take);
  s->rpos_ += take;
  if (s->rpos_ == s->rlen_) s->release_read_buffer();
  return static_cast<int>(take);
}

int socket_bio::on_write(BIO* bio, const char* in, int len) {
  socket_bio* s = self_of(bio);
  BIO_clear_retry_flags(bio);
  auto size = static_cast<std::size_t>(len);
  if (s->wbuf_ && s->wlen_ + size > buffer_pool::block_size) {
    if (s->flush() == flush_result::failed) return -1;
    if (s->wbuf_ && s->wlen_ + size > buffer_pool::block_size) {
      BIO_set_retry_write(bio);
      return -1;
    }
  }
  if (size > buffer_pool::block_size) {  // never from BoringSSL (records are <= 16.5 KiB)
    errno = EMSGSIZE;
    return -1;
  }
  if (!s->wbuf_) s->wbuf_ = buffer_pool::get();
  std::memcpy(s->wbuf_ + s->wlen_, in, size);
  s->wlen_ += size;
  return len;
}

long socket_bio::on_ctrl(BIO* bio, int cmd, long, void*) {
  socket_bio* s = self_of(bio);
  switch (cmd) {
    case BIO_CTRL_FLUSH: {
      BIO_clear_retry_flags(bio);
      auto r = s->flush();
      if (r == flush_result::done) return 1;
      if (r == flush_result::would_block) BIO_set_retry_write(bio);
      return -1;
    }
    case BIO_CTRL_WPENDING: return static_cast<long>(s->wlen_ - s->wpos_);
    case BIO_CTRL_PENDING: return static_cast<long>(s->rlen_ - s->rpos_);
    default: return 0;
  }
}

socket_bio::flush_result socket_bio::flush() {
  while (wpos_ < wlen_) {
    ssize_t n = ::send(fd_, wbuf_ + wpos_, wlen_ - wpos_, MSG_NOSIGNAL);
    if (n > 0) {
      wpos_ += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // Keep what is left at the front so appends have the most room.
      std::memmove(wbuf_, wbuf_ + wpos_, wlen_ - wpos_);
      wlen_ -= wpos_;
      wpos_ = 0;
      return flush_result::would_block;
    }
    return flush_result::failed;
  }
  release_write_buffer();
  return flush_result::done;
}

}  // namespace postern::net
