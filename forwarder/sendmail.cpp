#include "sendmail.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "cli/exit_codes.hpp"
#include "cli/log.hpp"
#include "forwarder_server.hpp"

namespace postern::forwarder {

namespace lg = postern::log;
using asio::awaitable;

namespace {

constexpr std::size_t read_size = 64 * 1024;

/// The message from a file descriptor, as sendmail reads it: bare LF line ends become CRLF
/// (local programs write LF), and unless -i a line holding only "." ends the message.
class stdin_source : public message_source {
 public:
  stdin_source(int fd, bool dot_ends) : fd_(fd), dot_ends_(dot_ends) {}

  /// Reads the whole header block first so -t and the default sender can use it.
  awaitable<status> read(std::string& out) override {
    if (!pending_.empty()) {
      out += pending_;
      pending_.clear();
      co_return ended_ ? status::end : status::more;
    }
    if (ended_) co_return status::end;
    co_return next(out);
  }
  [[nodiscard]] std::string error() const override { return error_; }

  /// Reads until the header block is complete (or the input ends), kept for read().
  status prefetch_headers() {
    status st = status::more;
    while (st == status::more && !smtp::header_end(pending_)) st = next(pending_);
    return st;
  }
  [[nodiscard]] const std::string& pending() const { return pending_; }

  /// Removes a header field from the prefetched header block (-t and Bcc:).
  void remove_field(std::string_view name) {
    auto end = smtp::header_end(pending_);
    std::size_t fields = end ? *end - 2 : pending_.size();  // keep the empty line
    smtp::header_block block =
        smtp::header_block::parse(std::string_view(pending_).substr(0, fields));
    if (block.remove(name) > 0) pending_ = block.serialize() + pending_.substr(fields);
  }

 private:
  status next(std::string& out) {
    char buf[read_size];
    ssize_t n;
    do n = ::read(fd_, buf, sizeof buf);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      error_ = std::string("reading the message: ") + std::strerror(errno);
      return status::failed;
    }
    if (n == 0) {
      out += line_;  // an unterminated last line
      line_.clear();
      ended_ = true;
      return status::end;
    }
    for (ssize_t i = 0; i < n && !ended_; ++i) {
      if (buf[i] != '\n') {
        line_ += buf[i];
        continue;
      }
      if (!line_.empty() && line_.back() == '\r') line_.pop_back();
      if (dot_ends_ && line_ == ".") {
        ended_ = true;
        break;
      }
      out += line_;
      out += "\r\n";
      line_.clear();
    }
    return ended_ ? status::end : status::more;
  }

  int fd_;
  bool dot_ends_;
  bool ended_ = false;
  std::string line_;  ///< the line being read, without its end
  std::string pending_;
  std::string error_;
};

int exit_for(const smtp::reply& r, bool data_phase) {
  if (r.positive()) return exit_code::ok;
  if (r.transient()) return exit_code::tempfail;
  return data_phase ? exit_code::data : exit_code::unavailable;
}

awaitable<int> relay_one(forwarder_runtime& rt, const sendmail_options& options, int fd) {
  stdin_source source(fd, options.dot_ends_message);
  if (source.prefetch_headers() == message_source::status::failed) {
    std::cerr << "postern-forwarder: " << source.error() << "\n";
    co_return exit_code::tempfail;
  }
  const std::string& pending = source.pending();
  auto end = smtp::header_end(pending);
  smtp::header_block headers =
      smtp::header_block::parse(std::string_view(pending).substr(0, end ? *end : pending.size()));
  std::string from = options.from;
  if (from.empty()) {
    auto values = headers.values("From");
    auto list =
        values.empty() ? std::vector<std::string>{} : smtp::parse_address_list(values.front());
    if (list.size() != 1) {
      std::cerr << "postern-forwarder: no sender: give -f ADDRESS or a From: header with one "
                   "address\n";
      co_return exit_code::data;
    }
    from = list.front();
  }
  std::vector<std::string> recipients = options.recipients;
  if (options.recipients_from_headers)
    for (const char* field : {"To", "Cc", "Bcc"})
      for (const auto& v : headers.values(field))
        for (auto& a : smtp::parse_address_list(v)) recipients.push_back(a);
  // Like every sendmail -t: Bcc recipients get the message, nobody gets the Bcc: header.
  if (options.recipients_from_headers) source.remove_field("Bcc");
  if (recipients.empty()) {
    std::cerr << "postern-forwarder: no recipients (give them as arguments, or -t)\n";
    co_return exit_code::usage;
  }
  relay_transaction tx(rt, lg::new_session_id(), "sendmail");
  auto fail = [](const smtp::reply& r, bool data_phase) {
    std::cerr << "postern-forwarder: " << r.one_line() << "\n";
    return exit_for(r, data_phase);
  };
  const smtp::mail_path sender{from, {}};
  smtp::reply r = co_await tx.mail(sender);
  if (!r.positive()) co_return fail(r, false);
  for (const auto& to : recipients) {
    const smtp::mail_path recipient{to, {}};
    r = co_await tx.rcpt(recipient);
    if (!r.positive()) {
      std::cerr << "postern-forwarder: recipient <" << to << ">: ";
      co_await tx.reset();
      co_return fail(r, false);
    }
  }
  std::optional<smtp::reply> final_reply = co_await tx.data(source);
  co_await tx.reset();
  if (!final_reply) {
    std::cerr << "postern-forwarder: " << source.error() << "; nothing was sent\n";
    co_return exit_code::tempfail;
  }
  if (!final_reply->positive()) co_return fail(*final_reply, true);
  co_return exit_code::ok;
}

}  // namespace

std::optional<sendmail_options> parse_sendmail_args(const std::vector<std::string>& args,
                                                    const std::string& default_config,
                                                    std::string& error) {
  sendmail_options o;
  o.config = default_config;
  bool options_done = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::size_t prefix) -> std::optional<std::string> {
      if (a.size() > prefix) return a.substr(prefix);
      if (i + 1 < args.size()) return args[++i];
      error = a + " needs a value";
      return std::nullopt;
    };
    if (options_done || a.empty() || a[0] != '-') {
      o.recipients.push_back(a);
    } else if (a == "--") {
      options_done = true;
    } else if (a == "-c" || a == "--config") {
      auto v = value(a.size());
      if (!v) return std::nullopt;
      o.config = *v;
    } else if (a.rfind("-f", 0) == 0 || a.rfind("-r", 0) == 0) {
      auto v = value(2);
      if (!v) return std::nullopt;
      o.from = *v;
    } else if (a.rfind("-F", 0) == 0) {
      if (!value(2)) return std::nullopt;  // full name: the From: header says it already
    } else if (a == "-t") {
      o.recipients_from_headers = true;
    } else if (a == "-i" || a == "-oi") {
      o.dot_ends_message = false;
    } else if (a == "-v") {
      ++o.verbose;
    } else if (a == "--trace") {
      o.trace = true;
    } else if (a.rfind("-o", 0) == 0 || a == "-bm" || a == "-U") {
      // Delivery-mode options of other sendmails: meaningless here, accepted for scripts.
    } else {
      error = "unknown option " + a;
      return std::nullopt;
    }
  }
  return o;
}

int run_sendmail(const sendmail_options& options, int fd) {
  conf::diagnostics diags;
  auto config = conf::load_forwarder_config(options.config, diags);
  if (!config) {
    std::cerr << diags.to_string();
    return exit_code::config;
  }
  asio::io_context ctx(1);
  std::vector<std::string> errors;
  auto rt = build_runtime(ctx, *config, options.trace, errors);
  if (!rt) {
    for (const auto& e : errors) std::cerr << "postern-forwarder: " << e << "\n";
    return exit_code::config;
  }
  int code = exit_code::software;
  asio::co_spawn(ctx, relay_one(*rt, options, fd), [&](std::exception_ptr e, int result) {
    code = e ? exit_code::software : result;
    rt->pool->close_all();
    ctx.stop();
  });
  ctx.run();
  return code;
}

}  // namespace postern::forwarder
