#include "delivery.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>

#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "cli/log.hpp"
#include "local_targets.hpp"
#include "tunnel/net/child_process.hpp"
#include "tunnel/net/spool_file.hpp"

namespace postern::fetch {

using asio::awaitable;
using smtp::client_result;
using smtp::failure_kind;
using status = delivery_result::status;

namespace {

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

delivery_result failed(bool temporary, std::string detail) {
  return {temporary ? status::temporary : status::permanent, std::move(detail)};
}

/// Maildir and stdout (mboxrd): local writes, done synchronously.
class local_delivery : public delivery {
 public:
  local_delivery(const conf::delivery_target& target, int stdout_fd, const std::string& session)
      : target_(target), stdout_fd_(stdout_fd) {
    if (target_.kind != conf::target_kind::maildir) return;
    if (std::size_t n = maildir_writer::remove_abandoned(target_.path); n > 0)
      log::info("fetch.tmp_removed", {{"session", session},
                                      {"maildir", target_.path},
                                      {"files", n},
                                      {"why", "left by a run that was killed mid-message"}});
  }

  awaitable<delivery_result> begin(const std::string& sender, const std::string&) override {
    std::string error;
    if (target_.kind == conf::target_kind::maildir) {
      if (!place_) {
        place_.emplace();
        if (!place_->open(target_.path, error)) {
          place_.reset();  // tried again with the next message
          co_return failed(true, error);
        }
      }
      maildir_.emplace();
      if (!maildir_->begin(*place_, error)) co_return failed(true, error);
    } else {
      mbox_ = mboxrd_encoder{};
      out_ = mboxrd_encoder::separator(sender, now_seconds());
    }
    co_return delivery_result{};
  }
  awaitable<delivery_result> write(const std::string& bytes) override {
    std::string error;
    if (maildir_) {
      if (!maildir_->write(bytes, error)) co_return failed(true, error);
      co_return delivery_result{};
    }
    mbox_.encode(bytes, out_);
    co_return out_.size() < 64 * 1024 ? delivery_result{} : flush();
  }
  awaitable<delivery_result> commit() override {
    std::string error;
    if (maildir_) {
      bool ok = maildir_->commit(error);
      maildir_.reset();
      co_return ok ? delivery_result{} : failed(true, error);
    }
    mbox_.finish(out_);
    co_return flush();
  }
  void abort() override { maildir_.reset(); }

 private:
  delivery_result flush() {
    std::size_t off = 0;
    while (off < out_.size()) {
      ssize_t n = ::write(stdout_fd_, out_.data() + off, out_.size() - off);
      if (n <= 0) return failed(true, "writing to standard output failed");
      off += static_cast<std::size_t>(n);
    }
    out_.clear();
    return {};
  }
  const conf::delivery_target& target_;
  int stdout_fd_;
  std::optional<maildir_place> place_;  ///< opened at the first message, kept for the run
  std::optional<maildir_writer> maildir_;
  mboxrd_encoder mbox_;
  std::string out_;
};

/// SMTP or LMTP to the local mail server, one session for the whole run.
class smtp_delivery : public delivery {
 public:
  smtp_delivery(asio::any_io_executor ex, smtp::client_params params)
      : executor_(std::move(ex)), params_(std::move(params)) {}

  awaitable<delivery_result> begin(const std::string& sender,
                                   const std::string& recipient) override {
    if (!client_ || !client_->reusable()) {
      client_ = std::make_unique<smtp::client>(executor_, params_);
      client_result r = co_await client_->async_open();
      if (!r.ok()) co_return result(r, "connecting to " + params_.endpoint.to_string());
    }
    client_result r = co_await client_->async_envelope("<" + sender + ">", "<" + recipient + ">");
    if (!r.ok()) {
      delivery_result out = result(r, "");
      co_await client_->async_reset();
      co_return out;
    }
    co_return delivery_result{};
  }
  awaitable<delivery_result> write(const std::string& bytes) override {
    client_result r = co_await client_->async_write_body(bytes.data(), bytes.size());
    co_return r.ok() ? delivery_result{} : result(r, "");
  }
  awaitable<delivery_result> commit() override {
    // LMTP answers once per accepted recipient; there is exactly one here.
    client_result r = co_await client_->async_end_data();
    co_return r.ok() ? delivery_result{status::delivered, r.server.one_line()} : result(r, "");
  }
  void abort() override {
    if (client_) client_->abort();  // no end of data: the server delivers nothing
    client_.reset();
  }

 private:
  static delivery_result result(const client_result& r, const std::string& context) {
    std::string text = context.empty() ? "" : context + ": ";
    text += r.server.code ? r.server.one_line() : r.detail;
    // Only the server's own 5yz is permanent; everything else leaves the message for later.
    return failed(r.kind != failure_kind::rejected_permanent, text);
  }
  asio::any_io_executor executor_;
  smtp::client_params params_;
  std::unique_ptr<smtp::client> client_;
};

/// exec: a program with the message on its standard input; its exit status decides
/// (0 delivered, 75 try later, anything else refused). The message is spooled to an unlinked
/// file first and the program started only once it is complete: a program reading a pipe
/// would take the end of a dying fetch's output for the end of the message and deliver half
/// of it (found by the kill -9 test).
class exec_delivery : public delivery {
 public:
  exec_delivery(asio::any_io_executor ex, std::vector<std::string> argv, std::string mailbox,
                conf::duration timeout)
      : executor_(std::move(ex)),
        argv_(std::move(argv)),
        mailbox_(std::move(mailbox)),
        timeout_(timeout) {}

  awaitable<delivery_result> begin(const std::string& sender,
                                   const std::string& recipient) override {
    args_.clear();
    for (std::string a : argv_) {
      for (auto [key, value] : {std::pair<std::string, std::string>{"{sender}", sender},
                                {"{recipient}", recipient},
                                {"{mailbox}", mailbox_}})
        for (auto pos = a.find(key); pos != std::string::npos;
             pos = a.find(key, pos + value.size()))
          a.replace(pos, key.size(), value);
      args_.push_back(std::move(a));
    }
    spool_.emplace();
    if (!spool_->ok()) co_return failed(true, spool_->error());
    co_return delivery_result{};
  }
  awaitable<delivery_result> write(const std::string& bytes) override {
    if (!spool_->write(bytes)) co_return failed(true, spool_->error());
    co_return delivery_result{};
  }
  awaitable<delivery_result> commit() override {
    net::child_spec spec;
    spec.argv = args_;
    spec.stdin_fd = spool_->fd();
    spec.capture_stdout = false;  // a program's own output goes where ours goes
    spec.capture_stderr = false;
    spec.timeout = timeout_;
    ::lseek(spec.stdin_fd, 0, SEEK_SET);  // the child shares the offset of our descriptor
    net::child_result r = co_await net::async_run_child(executor_, spec);
    spool_.reset();
    if (r.succeeded()) co_return delivery_result{};
    if (r.timed_out)
      co_return failed(true, argv_.front() + " did not finish within the deliver timeout");
    if (!r.started) co_return failed(false, argv_.front() + ": " + r.describe(timeout_));  // 127
    const int code = r.signal ? 128 + r.signal : r.exit_status;
    co_return failed(code == 75, argv_.front() + " exited " + std::to_string(code));
  }
  void abort() override { spool_.reset(); }

 private:
  asio::any_io_executor executor_;
  std::vector<std::string> argv_;
  std::vector<std::string> args_;  ///< argv_ with this message's placeholders filled in
  std::string mailbox_;
  conf::duration timeout_;
  std::optional<net::spool_file> spool_;
};

}  // namespace

std::unique_ptr<delivery> make_delivery(asio::any_io_executor ex,
                                        const conf::delivery_target& target,
                                        const delivery_context& context, std::string& error) {
  switch (target.kind) {
    case conf::target_kind::maildir:
    case conf::target_kind::stdout_mbox:
      return std::make_unique<local_delivery>(target, context.stdout_fd, context.session);
    case conf::target_kind::smtp:
    case conf::target_kind::lmtp: {
      smtp::client_params p;
      p.endpoint = *target.url;
      p.helo_name = context.hostname;
      p.lmtp = target.kind == conf::target_kind::lmtp;
      p.role = "target";
      static const conf::mailbox no_settings;
      const conf::mailbox& settings = context.settings ? *context.settings : no_settings;
      if (p.endpoint.tls != conf::tls_mode::none) {
        p.tls = net::tls_context::create(settings.tls, conf::tunnel_mode::client, error);
        if (!p.tls) return nullptr;
      }
      p.login = settings.login;
      if (!p.login.empty())
        p.password = net::password_of(settings, context.timeouts.password_command);
      p.connect_timeout = context.timeouts.connect;
      p.handshake_timeout = context.timeouts.handshake;
      p.reply_timeout = context.timeouts.command;
      p.final_reply_timeout = context.timeouts.deliver;
      p.session = context.session;
      p.trace = context.trace;
      return std::make_unique<smtp_delivery>(std::move(ex), std::move(p));
    }
    case conf::target_kind::exec:
      return std::make_unique<exec_delivery>(std::move(ex), target.argv, context.mailbox,
                                             context.timeouts.deliver);
  }
  error = "unknown delivery target";
  return nullptr;
}

}  // namespace postern::fetch
