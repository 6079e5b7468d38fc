// relay_transaction's Bcc split for PEC ([pec] bcc = "split"): the provider requires the
// envelope recipients to equal To + Cc, so a Bcc recipient can only be reached by a
// submission of its own, addressed to it. The main submission goes first; each copy is sent
// on the same upstream session with the body read back from an unlinked spool file.
#include "cli/log.hpp"
#include "relay.hpp"

namespace postern::forwarder {

namespace lg = postern::log;
using asio::awaitable;

awaitable<smtp::reply> relay_transaction::narrow_to_main(const std::vector<std::string>& main) {
  // The upstream has every RCPT so far; start over with To + Cc only.
  smtp::client_result reset = co_await upstream_->async_reset();
  if (!reset.ok()) co_return upstream_failure(reset);
  smtp::reply answer = co_await upstream_mail();
  if (!answer.positive()) co_return answer;
  for (const auto& address : main) {
    const smtp::mail_path to{address, {}};
    answer = co_await upstream_rcpt(to);
    if (!answer.positive()) co_return answer;
  }
  co_return smtp::reply{};
}

awaitable<smtp::reply> relay_transaction::send_copy(const smtp::header_block& headers,
                                                    const std::string& address,
                                                    const net::spool_file& spool) {
  smtp::header_block copy = headers;
  copy.remove("To");
  copy.remove("Cc");
  copy.add("To", "<" + address + ">");
  smtp::reply answer = co_await upstream_mail();
  if (!answer.positive()) co_return answer;
  const smtp::mail_path to{address, {}};
  answer = co_await upstream_rcpt(to);
  if (!answer.positive()) co_return answer;
  smtp::client_result r = co_await upstream_->async_data();
  if (!r.ok()) co_return r.server.code ? r.server : upstream_failure(r);
  // The audit line of the copy carries the digest and size of what the copy relayed.
  net::sha256 sha;
  std::string bytes = copy.serialize();
  sha.update(bytes);
  size_ = bytes.size() + spool.size();
  r = co_await upstream_->async_write_body(bytes.data(), bytes.size());
  std::vector<char> buf(64 * 1024);
  for (std::uint64_t off = 0; r.ok() && off < spool.size();) {
    std::size_t n = spool.read_at(off, buf.data(), buf.size());
    if (n == 0) {
      finish_upstream(false);  // no end of data was sent: the provider delivers nothing
      co_return smtp::make_reply(451, "4.3.0", "spool file unreadable; copy not sent");
    }
    sha.update(buf.data(), n);
    r = co_await upstream_->async_write_body(buf.data(), n);
    off += n;
  }
  sha256_ = sha.hex_final();
  if (r.ok()) r = co_await upstream_->async_end_data();
  if (!r.server.code) co_return upstream_failure(r);
  co_return r.server;
}

awaitable<smtp::reply> relay_transaction::send_copies(const smtp::header_block& headers,
                                                      const smtp::reply& main,
                                                      const std::vector<std::string>& bcc,
                                                      const net::spool_file& spool) {
  std::vector<smtp::reply> copies;
  for (const auto& address : bcc) {
    // Each copy is a submission of its own for the provider's rate limit.
    smtp::reply outcome = rt_.pool->admit(*route_.mailbox);
    if (!outcome.code && !upstream_) outcome = co_await open_upstream(route_, true);
    if (!outcome.code) outcome = co_await send_copy(headers, address, spool);
    if (upstream_ && !outcome.positive()) {
      smtp::client_result reset = co_await upstream_->async_reset();
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

smtp::reply relay_transaction::split_outcome(const smtp::reply& main,
                                             const std::vector<std::string>& bcc,
                                             const std::vector<smtp::reply>& copies) const {
  std::string report;
  bool failed = false;
  for (std::size_t i = 0; i < bcc.size(); ++i) {
    failed = failed || !copies[i].positive();
    report += "\n<" + bcc[i] + "> (Bcc, separate submission): " + copies[i].one_line();
  }
  if (!failed) return smtp::make_reply(250, "2.0.0", "To/Cc: " + main.one_line() + report);
  // Some copies failed after To/Cc were delivered: a 5yz so the sender hears of it, and no
  // retry duplicates what was delivered. The text says exactly what happened.
  return smtp::make_reply(
      550, "5.3.0",
      "partly delivered: To/Cc accepted (" + main.one_line() + "); do not resend to them" + report);
}

}  // namespace postern::forwarder
