#pragma once
/// One listed message's way in postern-fetch: RETR, streamed to the delivery target as it
/// arrives (one Received: line first, the header held until complete for the envelope
/// sender), then what the fetch plan says of the target's answer: record, DELE, or stop. The
/// per-message log and audit lines (with the PEC classification) are written here.

#include <cstdint>
#include <string>

#include <asio/awaitable.hpp>

#include "fetch/delivery.hpp"
#include "fetch/fetch_plan.hpp"
#include "fetch/fetch_run.hpp"
#include "fetch/pec_receipt.hpp"
#include "fetch/pop3_client.hpp"
#include "fetch/state_store.hpp"

namespace postern::fetch {

/// Sets `out` to failed with `error`; `temporary`: a later run may succeed.
void set_failed(mailbox_outcome& out, std::string error, bool temporary);

/// Everything one message's fetch works with; owned by the mailbox's pass.
struct message_context {
  const conf::mailbox& mailbox;
  const run_options& options;
  const std::string& session;
  const std::string& recipient;
  const conf::endpoint& server;
  const conf::delivery_target& target_name;
  std::int64_t now = 0;
  pop3_client& client;
  delivery& target;
  state_store& state;
  fetch_plan& plan;
  mailbox_outcome& out;
};

class message_fetch {
 public:
  /// What became of it: delivered (then deleted or kept), refused for good (left on the
  /// server), or the run stops (left on the server too; `out` says why).
  enum class step { delete_it, keep_it, refused, stop };

  explicit message_fetch(const message_context& c) : c_(c) {}
  /// RETR -> target -> record. `uid` is empty without UIDL (nothing is recorded then).
  asio::awaitable<step> run(std::uint32_t number, const std::string& uid, std::uint64_t size);

 private:
  struct message_pipe;
  asio::awaitable<step> settle(const std::string& uid, const std::string& label, std::uint64_t size,
                               const message_pipe& pipe, const delivery_result& d);
  step stop_oversized(const std::string& uid, const std::string& label, std::uint64_t listed,
                      const message_pipe& pipe);
  void audit(const std::string& uid, std::uint64_t size, const std::string& outcome,
             const std::string& reply, const message_pipe& pipe, const pec_info& pec);

  const message_context& c_;
};

}  // namespace postern::fetch
