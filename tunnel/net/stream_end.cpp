#include "tunnel/net/stream_end.hpp"

#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>

namespace postern::net {

namespace {

io_result from_errno(const char* what) {
  int e = errno;
  io_result r;
  if (e == EAGAIN || e == EWOULDBLOCK) return r;
  // A peer that resets or vanishes is routine, not a fault of ours.
  if (e == ECONNRESET || e == EPIPE)
    r.reset = true;
  else
    r.failed = true;
  r.error = std::string(what) + ": " + std::strerror(e);
  return r;
}

bool is_socket(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

}  // namespace

stream_end::stream_end(const asio::any_io_executor& ex, int fd_in, int fd_out)
    : in_(ex, fd_in), is_socket_(is_socket(fd_in)) {
  in_.non_blocking(true);
  if (fd_out >= 0 && fd_out != fd_in) {
    out_.emplace(ex, fd_out);
    out_->non_blocking(true);
  }
}

void stream_end::attach_tls(tls_ptr<SSL> ssl) {
  ssl_ = std::move(ssl);
  bio_ = std::make_unique<socket_bio>(in_.native_handle());
  BIO* bio = bio_->make_bio().release();
  SSL_set_bio(ssl_.get(), bio, bio);  // one reference serves both directions
}

io_result stream_end::flush() {
  if (!bio_) return {1};
  switch (bio_->flush()) {
    case socket_bio::flush_result::done: return {1};
    case socket_bio::flush_result::would_block: return {0, io_want::write};
    case socket_bio::flush_result::failed: break;
  }
  return from_errno("write");
}

io_result stream_end::tls_result(int ret, const char* what) {
  int err = SSL_get_error(ssl_.get(), ret);
  switch (err) {
    case SSL_ERROR_WANT_READ: return {0, io_want::read};
    case SSL_ERROR_WANT_WRITE: return {0, io_want::write};
    case SSL_ERROR_ZERO_RETURN: return {0, io_want::none, true, false, false, "close_notify"};
    case SSL_ERROR_SYSCALL:
      if (ERR_peek_error() == 0) {
        ERR_clear_error();
        if (ret == 0) return {0, io_want::none, true, false, false, "closed without close_notify"};
        return from_errno(what);
      }
      [[fallthrough]];
    default: {
      uint32_t code = ERR_get_error();
      ERR_clear_error();
      const int reason = ERR_GET_LIB(code) == ERR_LIB_SSL ? ERR_GET_REASON(code) : 0;
      long verify = SSL_get_verify_result(ssl_.get());
      if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED && verify != X509_V_OK)
        return {
            0,
            io_want::none,
            false,
            false,
            true,
            std::string("certificate verification failed: ") + X509_verify_cert_error_string(verify),
            reason};
      char text[256];
      ERR_error_string_n(code, text, sizeof text);
      return {0, io_want::none, false, false, true, std::string(what) + " failed: " + text, reason};
    }
  }
}

io_result stream_end::read(char* buf, std::size_t len) {
  if (ssl_) {
    int ret = SSL_read(ssl_.get(), buf, static_cast<int>(std::min<std::size_t>(len, INT32_MAX)));
    if (ret > 0) return {static_cast<std::size_t>(ret)};
    io_result r = tls_result(ret, "TLS read");
    // Reading can make TLS write (alerts, key updates): send that before waiting to read,
    // or the peer may wait for it.
    if (r.want == io_want::read && bio_->has_pending_output()) {
      io_result f = flush();
      if (f.want != io_want::none || f.failed || f.reset) return f;
    }
    return r;
  }
  ssize_t n = ::read(in_.native_handle(), buf, len);
  if (n > 0) return {static_cast<std::size_t>(n)};
  if (n == 0) return {0, io_want::none, true};
  io_result r = from_errno("read");
  if (!r.reset && !r.failed) r.want = io_want::read;
  return r;
}

bool stream_end::read_buffered() const {
  return ssl_ && (SSL_pending(ssl_.get()) > 0 || (bio_ && bio_->has_buffered_input()));
}

io_result stream_end::write(const char* buf, std::size_t len) {
  if (ssl_) {
    int ret = SSL_write(ssl_.get(), buf, static_cast<int>(std::min<std::size_t>(len, INT32_MAX)));
    if (ret > 0) return {static_cast<std::size_t>(ret)};
    return tls_result(ret, "TLS write");
  }
  int fd = out_ ? out_->native_handle() : in_.native_handle();
  ssize_t n = is_socket_ && !out_ ? ::send(fd, buf, len, MSG_NOSIGNAL) : ::write(fd, buf, len);
  if (n >= 0) return {static_cast<std::size_t>(n)};
  io_result r = from_errno("write");
  if (!r.reset && !r.failed) r.want = io_want::write;
  return r;
}

io_result stream_end::handshake() {
  int ret = SSL_do_handshake(ssl_.get());
  if (ret == 1) return {1};
  return tls_result(ret, "TLS handshake");
}

io_result stream_end::shutdown_write() {
  if (write_shut_) return {1};
  if (ssl_) {
    if (!close_notify_sent_) {
      int ret = SSL_shutdown(ssl_.get());
      if (ret < 0) {
        io_result r = tls_result(ret, "TLS shutdown");
        if (r.want != io_want::none) return r;
        // Could not send close_notify (the peer is gone): still end with FIN below.
      }
      close_notify_sent_ = true;
    }
    io_result f = flush();
    if (f.want != io_want::none) return f;
  }
  write_shut_ = true;
  if (out_) {
    out_->close();
    out_.reset();
    return {1};
  }
  if (is_socket_) ::shutdown(in_.native_handle(), SHUT_WR);
  return {1};
}

io_result stream_end::peek(char* buf, std::size_t len) {
  ssize_t n = ::recv(in_.native_handle(), buf, len, MSG_PEEK);
  if (n > 0) return {static_cast<std::size_t>(n)};
  if (n == 0) return {0, io_want::none, true};
  io_result r = from_errno("read");
  if (!r.reset && !r.failed) r.want = io_want::read;
  return r;
}

asio::awaitable<bool> stream_end::wait(io_want want) {
  auto& d = want == io_want::write ? out() : in_;
  if (!d.is_open()) co_return false;
  auto [ec] =
      co_await d.async_wait(want == io_want::write ? asio::posix::descriptor_base::wait_write
                                                   : asio::posix::descriptor_base::wait_read,
                            asio::experimental::as_tuple(asio::use_awaitable));
  co_return !ec;
}

void stream_end::cancel() {
  std::error_code ignored;
  in_.cancel(ignored);
  if (out_) out_->cancel(ignored);
}

void stream_end::close() {
  std::error_code ignored;
  in_.close(ignored);
  if (out_) out_->close(ignored);
}

std::string stream_end::tls_version() const { return ssl_ ? SSL_get_version(ssl_.get()) : ""; }

std::string stream_end::alpn() const {
  if (!ssl_) return {};
  const uint8_t* data = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(ssl_.get(), &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

std::string stream_end::tls_cipher() const {
  if (!ssl_) return {};
  const SSL_CIPHER* c = SSL_get_current_cipher(ssl_.get());
  return c ? SSL_CIPHER_standard_name(c) : "";
}

void stream_end::send_session_tickets() {
  if (!ssl_) return;
  SSL_write(ssl_.get(), "", 0);
  ERR_clear_error();  // a zero-length write may queue an error nobody should see later
  flush();            // would_block is fine: the next read or write sends them
}

handshake_failure stream_end::explain_failure(const io_result& r) const {
  return explain_handshake_failure(r.tls_reason, r.error,
                                   ssl_ ? SSL_get_verify_result(ssl_.get()) : 0,
                                   ssl_ ? tls_context::refusal(ssl_.get()) : "", is_server());
}

bool stream_end::verify_failed(const io_result& r) {
  return r.tls_reason == SSL_R_CERTIFICATE_VERIFY_FAILED;
}

bool stream_end::is_server() const { return ssl_ && SSL_is_server(ssl_.get()); }

bool stream_end::resumed() const { return ssl_ && SSL_session_reused(ssl_.get()); }

}  // namespace postern::net
