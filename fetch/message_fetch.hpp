#pragma once
/// One listed message's way in postern-fetch: retrieved (POP3 RETR, IMAP UID FETCH), streamed
/// to the delivery target as it arrives (one Received: line first, the header held until
/// complete for the envelope sender), then what the fetch plan says of the target's answer:
/// record, delete, or stop. The per-message log and audit lines (with the PEC
/// classification) are written here.

#include <cstdint>
#include <string>

#include <asio/awaitable.hpp>

#include "fetch/delivery.hpp"
#include "fetch/fetch_plan.hpp"
#include "fetch/fetch_run.hpp"
#include "fetch/mail_session.hpp"
#include "fetch/pec_receipt.hpp"
#include "fetch/state_store.hpp"

namespace postern::fetch {

/// Sets `out` to failed with `error`; `temporary`: a later run may succeed.
void set_failed(mailbox_outcome& out, std::string error, bool temporary);

/// A mailbox's session settings for `endpoint` (TLS context, login, password source and the
/// fetch timeouts); nullopt + `error` when its TLS settings cannot be used.
std::optional<session_params> session_params_for(const conf::fetch_config& config,
                                                 const conf::mailbox& mailbox,
                                                 const conf::endpoint& endpoint,
                                                 const run_options& options,
                                                 const std::string& session, std::string& error);

/// The delivery target of a mailbox's run; null + `error` when it cannot be set up.
std::unique_ptr<delivery> delivery_for(const asio::any_io_executor& ex,
                                       const conf::fetch_config& config,
                                       const conf::mailbox& mailbox, const run_options& options,
                                       const std::string& session,
                                       const conf::delivery_target& target, std::string& error);

/// Where messages come from: a POP3 or an IMAP session.
class message_source {
 public:
  virtual ~message_source() = default;
  using body_sink = std::function<asio::awaitable<bool>(const std::string&)>;
  /// The octets of message `number` (POP3) or UID `number` (IMAP) to `sink`; `found` false
  /// when the server no longer has it.
  virtual asio::awaitable<session_result> retrieve(std::uint32_t number, const body_sink& sink,
                                                   bool& found) = 0;
  /// The run stops here: end the session so that the deletions made so far take effect.
  virtual asio::awaitable<void> stop() = 0;
  /// For the Received: header: "POP3", "POP3S", "IMAP", "IMAPS".
  [[nodiscard]] virtual std::string protocol() const = 0;
};

/// One message to fetch: how the server names it, its state key, how logs name it.
struct message_ref {
  std::uint32_t number = 0;  ///< POP3 message number, IMAP UID
  std::string key;           ///< the state's key; "" without UIDL (nothing is recorded)
  std::string label;         ///< for logs and the audit line
  std::uint64_t size = 0;    ///< as the server listed it
};

/// Everything one message's fetch works with; owned by the mailbox's pass.
struct message_context {
  const conf::mailbox& mailbox;
  const run_options& options;
  const std::string& session;
  const std::string& recipient;
  const conf::endpoint& server;
  const conf::delivery_target& target_name;
  std::int64_t now = 0;
  message_source& source;
  delivery& target;
  state_store& state;
  fetch_plan& plan;
  mailbox_outcome& out;
  /// Record each message's identity (size and header digest) with it: IMAP, whose UIDs a
  /// UIDVALIDITY change renames.
  bool identity = false;
};

/// The plan's verdict on one listed message, logged and counted (a size learnt is noted in
/// `state`); the caller fetches it, or deletes an old one, as the returned action says.
listed_action report_listed(const listed_decision& d, const message_ref& m,
                            const std::optional<uid_record>& recorded, state_store& state,
                            const std::string& session, const conf::mailbox& mailbox,
                            mailbox_outcome& out);

class message_fetch {
 public:
  /// What became of it: delivered (then deleted or kept), refused for good (left on the
  /// server), gone from the server before it was retrieved, or the run stops (left on the
  /// server too; `out` says why).
  enum class step { delete_it, keep_it, refused, gone, stop };

  explicit message_fetch(const message_context& c) : c_(c) {}
  /// Retrieve -> target -> record.
  asio::awaitable<step> run(const message_ref& m);

 private:
  struct message_pipe;
  asio::awaitable<step> settle(const message_ref& m, const message_pipe& pipe,
                               const delivery_result& d);
  step stop_oversized(const message_ref& m, const message_pipe& pipe);
  void audit(const message_ref& m, const std::string& outcome, const std::string& reply,
             const message_pipe& pipe, const pec_info& pec);

  const message_context& c_;
};

}  // namespace postern::fetch
