#include "fetch_plan.hpp"

#include <chrono>

namespace postern::fetch {

plan_settings plan_settings::of(const conf::fetch_config& config, bool keep, std::int64_t now,
                                bool dry_run, bool retry_failed) {
  plan_settings p;
  p.keep = keep;
  if (config.delete_after)
    p.delete_after = std::chrono::duration_cast<std::chrono::seconds>(*config.delete_after).count();
  p.now = now;
  p.retry_failed = retry_failed;
  p.dry_run = dry_run;
  p.max_message_size = config.max_message_size;
  p.skip_oversize = config.oversize == conf::oversize_action::skip;
  p.max_messages_per_run = config.max_messages_per_run;
  return p;
}

const char* to_string(listed_action a) {
  switch (a) {
    case listed_action::fetch: return "fetch";
    case listed_action::delete_old: return "delete_old";
    case listed_action::leave_delivered: return "leave_delivered";
    case listed_action::leave_seen: return "leave_seen";
    case listed_action::hold_refused: return "hold_refused";
    case listed_action::skip_oversize: return "skip_oversize";
    case listed_action::over_cap: return "over_cap";
    case listed_action::would_fetch: return "would_fetch";
  }
  return "?";
}

bool fetch_plan::expired(const uid_record& r) const {
  return settings_.delete_after && settings_.now - r.time >= *settings_.delete_after;
}

listed_decision fetch_plan::consider(const std::optional<uid_record>& recorded,
                                     std::uint64_t size) {
  listed_decision d;
  std::optional<uid_record> rec = recorded;
  if (rec && rec->size < 0) {
    // A version-1 record, without a size: it takes the size listed now, once, and is
    // checked from then on.
    rec->size = static_cast<std::int64_t>(size);
    if (!settings_.dry_run) d.learnt = rec;
  } else if (rec && static_cast<std::uint64_t>(rec->size) != size) {
    // Another message under a UID already recorded: new, never deleted for the old one.
    d.uid_reused = true;
    rec.reset();
  }
  if (rec) {
    switch (rec->outcome) {
      case uid_outcome::delivered:
        // Not kept, or kept long enough; also a run killed before QUIT, whose DELE never
        // took effect.
        d.action = (!settings_.keep || expired(*rec)) && !settings_.dry_run
                       ? listed_action::delete_old
                       : listed_action::leave_delivered;
        return d;
      case uid_outcome::seen: d.action = listed_action::leave_seen; return d;
      case uid_outcome::failed:
        if (!settings_.retry_failed) {
          d.action = listed_action::hold_refused;
          return d;
        }
        break;
    }
  }
  if (settings_.skip_oversize && settings_.max_message_size && size > settings_.max_message_size)
    d.action = listed_action::skip_oversize;
  else if (settings_.max_messages_per_run && to_fetch_ >= settings_.max_messages_per_run)
    d.action = listed_action::over_cap;
  else if (settings_.dry_run)
    d.action = listed_action::would_fetch;
  else
    ++to_fetch_;
  return d;
}

delivery_step fetch_plan::after_delivery(target_said said, bool has_uid) const {
  delivery_step s;
  switch (said) {
    case target_said::temporary:
      // Left on the server for the next run; later messages would meet the same problem.
      s.stop = true;
      break;
    case target_said::permanent:
      // Kept on the server, not tried again until --retry-failed.
      if (has_uid) s.record = uid_outcome::failed;
      break;
    case target_said::delivered:
      // Recorded first, deleted after: a crash in between leaves a record and the message,
      // and the next run deletes it without delivering it again.
      if (has_uid) s.record = uid_outcome::delivered;
      s.dele = !settings_.keep;
      break;
  }
  return s;
}

}  // namespace postern::fetch
