#pragma once
/// What postern-fetch does with each message, without I/O: the rules that decide whether mail
/// is lost or delivered twice. Given what the state file recorded and what the server lists,
/// a message is fetched, deleted, left, held or skipped; given what the target said, it is
/// recorded and deleted, recorded as refused, or the run stops with it left on the server.
/// mailbox_run asks and carries out; the unit tests walk every branch.

#include <cstdint>
#include <optional>

#include "conf/fetch_config.hpp"
#include "fetch/state_store.hpp"

namespace postern::fetch {

struct plan_settings {
  bool keep = false;  ///< leave delivered mail on the server (PEC mailboxes by default)
  std::optional<std::int64_t> delete_after;  ///< with keep: delete delivered mail this old (s)
  std::int64_t now = 0;                      ///< seconds since the epoch
  bool retry_failed = false;                 ///< try again what the target refused for good
  bool dry_run = false;                      ///< decide, change nothing
  std::uint64_t max_message_size = 0;        ///< 0 = no limit
  bool skip_oversize = true;                 ///< over the limit: skip (else deliver anyway)
  std::uint32_t max_messages_per_run = 0;    ///< 0 = all

  /// The settings of a run over a mailbox under `config`.
  static plan_settings of(const conf::fetch_config& config, bool keep, std::int64_t now,
                          bool dry_run, bool retry_failed);
};

enum class listed_action {
  fetch,            ///< new: retrieve and deliver it
  delete_old,       ///< delivered before, not kept (or kept long enough): DELE
  leave_delivered,  ///< delivered before and kept
  leave_seen,       ///< there before the first run, chosen not to be delivered
  hold_refused,     ///< refused for good before: left until --retry-failed
  skip_oversize,    ///< over max_message_size: left on the server
  over_cap,         ///< max_messages_per_run reached: the next run takes it
  would_fetch,      ///< --dry-run: would be fetched
};
const char* to_string(listed_action a);

struct listed_decision {
  listed_action action = listed_action::fetch;
  /// The UID was recorded for a message of another size: the server gave it to a new one.
  bool uid_reused = false;
  /// A version-1 record (no size) that learns the listed size now; the caller notes it.
  std::optional<uid_record> learnt;
};

/// What the target said of a message that was retrieved whole.
enum class target_said { delivered, temporary, permanent };

struct delivery_step {
  std::optional<uid_outcome> record;  ///< what to record (only with a UID)
  bool dele = false;                  ///< DELE it once recorded
  bool stop = false;                  ///< end the run here (QUIT), the message left in place
};

class fetch_plan {
 public:
  explicit fetch_plan(plan_settings s) : settings_(s) {}

  /// A listed message: `recorded` is the state's record of its UID (nullopt: none, or no
  /// UIDL), `size` what LIST says. Messages to fetch count towards max_messages_per_run.
  listed_decision consider(const std::optional<uid_record>& recorded, std::uint64_t size);
  /// After the target's answer; `has_uid`: without UIDL nothing is recorded.
  [[nodiscard]] delivery_step after_delivery(target_said said, bool has_uid) const;
  /// The state could not be written after a delivery: no DELE (the next run delivers the
  /// message again: the one documented duplicate), QUIT so earlier deletions take effect.
  [[nodiscard]] static delivery_step after_record_failure() { return {std::nullopt, false, true}; }
  /// The bytes a retrieval may bring (0 = no limit): past them it is stopped.
  [[nodiscard]] std::uint64_t byte_limit() const {
    return settings_.skip_oversize ? settings_.max_message_size : 0;
  }
  [[nodiscard]] std::uint32_t to_fetch() const { return to_fetch_; }

 private:
  [[nodiscard]] bool expired(const uid_record& r) const;

  plan_settings settings_;
  std::uint32_t to_fetch_ = 0;
};

}  // namespace postern::fetch
