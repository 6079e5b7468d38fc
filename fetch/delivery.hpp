#pragma once
/// Where postern-fetch puts a retrieved message: every target takes it in chunks as it is
/// retrieved and says, at the end, whether it was delivered, refused for now, or refused for
/// good. The message is never buffered whole.

#include <memory>
#include <string>

#include <asio/awaitable.hpp>

#include "conf/fetch_config.hpp"
#include "forwarder/smtp/client.hpp"

namespace postern::fetch {

struct delivery_result {
  enum class status { delivered, temporary, permanent };
  status result = status::delivered;
  std::string detail;  ///< the target's reply or error
  [[nodiscard]] bool ok() const { return result == status::delivered; }
};

class delivery {
 public:
  virtual ~delivery() = default;
  /// Starts one message for `recipient` from `sender` (its Return-Path; "" for <>).
  virtual asio::awaitable<delivery_result> begin(const std::string& sender,
                                                 const std::string& recipient) = 0;
  virtual asio::awaitable<delivery_result> write(const std::string& bytes) = 0;
  /// The message is complete: delivered when this says so, and only then.
  virtual asio::awaitable<delivery_result> commit() = 0;
  /// Drops an unfinished message (nothing of it is delivered).
  virtual void abort() = 0;
};

struct delivery_context {
  std::string hostname;  ///< for LHLO/EHLO
  int stdout_fd = 1;
  conf::fetch_timeouts timeouts;
  std::string session;
  bool trace = false;
  std::string mailbox;                      ///< for exec's {mailbox}
  const conf::mailbox* settings = nullptr;  ///< fetch.toml [delivery]: AUTH and TLS for smtp/lmtp
};

/// The delivery for a target; one object serves a whole run (an SMTP/LMTP session is kept).
std::unique_ptr<delivery> make_delivery(asio::any_io_executor ex,
                                        const conf::delivery_target& target,
                                        const delivery_context& context, std::string& error);

}  // namespace postern::fetch
