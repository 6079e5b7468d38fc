// relay_transaction's Bcc split for PEC ([pec] bcc = "split"): the provider requires the
// envelope recipients to equal To + Cc, so a Bcc recipient can only be reached by a
// submission of its own, addressed to it. The main submission goes first; each copy is sent
// on the same upstream session with the body read back from an unlinked spool file.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "cli/log.hpp"
#include "relay.hpp"

namespace postern::forwarder {

namespace lg = postern::log;
using asio::awaitable;

spool_file::spool_file() {
  const char* dir = std::getenv("TMPDIR");
  std::string path = dir && *dir ? dir : "/tmp";
  fd_ = ::open(path.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd_ < 0) error_ = "spool file in " + path + ": " + std::strerror(errno);
}

spool_file::~spool_file() {
  if (fd_ >= 0) ::close(fd_);
}

bool spool_file::write(const std::string& bytes) {
  std::size_t off = 0;
  while (fd_ >= 0 && off < bytes.size()) {
    ssize_t n = ::write(fd_, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error_ = std::string("spool file: ") + std::strerror(errno);
      return false;
    }
    off += static_cast<std::size_t>(n);
  }
  size_ += bytes.size();
  return fd_ >= 0;
}

std::size_t spool_file::read_at(std::uint64_t offset, char* buf, std::size_t len) const {
  ssize_t n;
  do n = ::pread(fd_, buf, len, static_cast<off_t>(offset));
  while (n < 0 && errno == EINTR);
  return n > 0 ? static_cast<std::size_t>(n) : 0;
}

awaitable<reply> relay_transaction::narrow_to_main(const std::vector<std::string>& main) {
  // The upstream has every RCPT so far; start over with To + Cc only.
  client_result reset = co_await upstream_->async_reset();
  if (!reset.ok()) co_return upstream_failure(reset);
  reply answer = co_await upstream_mail();
  if (!answer.positive()) co_return answer;
  for (const auto& address : main) {
    const mail_path to{address, {}};
    answer = co_await upstream_rcpt(to);
    if (!answer.positive()) co_return answer;
  }
  co_return reply{};
}

awaitable<reply> relay_transaction::send_copy(const header_block& headers,
                                              const std::string& address, const spool_file& spool) {
  header_block copy = headers;
  copy.remove("To");
  copy.remove("Cc");
  copy.add("To", "<" + address + ">");
  reply answer = co_await upstream_mail();
  if (!answer.positive()) co_return answer;
  const mail_path to{address, {}};
  answer = co_await upstream_rcpt(to);
  if (!answer.positive()) co_return answer;
  client_result r = co_await upstream_->async_data();
  if (!r.ok()) co_return r.server.code ? r.server : upstream_failure(r);
  // The audit line of the copy carries the digest and size of what the copy relayed.
  SHA256_CTX sha;
  SHA256_Init(&sha);
  std::string bytes = copy.serialize();
  SHA256_Update(&sha, bytes.data(), bytes.size());
  size_ = bytes.size() + spool.size();
  r = co_await upstream_->async_write_body(bytes.data(), bytes.size());
  std::vector<char> buf(64 * 1024);
  for (std::uint64_t off = 0; r.ok() && off < spool.size();) {
    std::size_t n = spool.read_at(off, buf.data(), buf.size());
    if (n == 0) {
      finish_upstream(false);  // no end of data was sent: the provider delivers nothing
      co_return make_reply(451, "4.3.0", "spool file unreadable; copy not sent");
    }
    SHA256_Update(&sha, buf.data(), n);
    r = co_await upstream_->async_write_body(buf.data(), n);
    off += n;
  }
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256_Final(digest, &sha);
  sha256_ = hex_digest(digest, sizeof digest);
  if (r.ok()) r = co_await upstream_->async_end_data();
  if (!r.server.code) co_return upstream_failure(r);
  co_return r.server;
}

awaitable<reply> relay_transaction::send_copies(const header_block& headers, const reply& main,
                                                const std::vector<std::string>& bcc,
                                                const spool_file& spool) {
  std::vector<reply> copies;
  for (const auto& address : bcc) {
    // Each copy is a submission of its own for the provider's rate limit.
    reply outcome = rt_.pool->admit(*route_.mailbox);
    if (!outcome.code && !upstream_) outcome = co_await open_upstream(route_, true);
    if (!outcome.code) outcome = co_await send_copy(headers, address, spool);
    if (upstream_ && !outcome.positive()) {
      client_result reset = co_await upstream_->async_reset();
      if (!reset.ok()) finish_upstream(false);
    }
    const std::vector<std::string> one = {address};
    audit(outcome.positive()    ? "relayed"
          : outcome.transient() ? "deferred"
                                : "rejected",
          outcome, &one);
    copies.push_back(std::move(outcome));
  }
  co_return split_outcome(main, bcc, copies);
}

reply relay_transaction::split_outcome(const reply& main, const std::vector<std::string>& bcc,
                                       const std::vector<reply>& copies) const {
  std::string report;
  bool failed = false;
  for (std::size_t i = 0; i < bcc.size(); ++i) {
    failed = failed || !copies[i].positive();
    report += "\n<" + bcc[i] + "> (Bcc, separate submission): " + copies[i].one_line();
  }
  if (!failed) return make_reply(250, "2.0.0", "To/Cc: " + main.one_line() + report);
  // Some copies failed after To/Cc were delivered: a 5yz so the sender hears of it, and no
  // retry duplicates what was delivered. The text says exactly what happened.
  return make_reply(
      550, "5.3.0",
      "partly delivered: To/Cc accepted (" + main.one_line() + "); do not resend to them" + report);
}

}  // namespace postern::forwarder
