// Every branch of fetch's message plan: what happens to a listed message given its record,
// and to a retrieved one given the target's answer. These are the rules that decide whether
// mail is lost or delivered twice.
#include <catch2/catch.hpp>

#include "fetch/fetch_plan.hpp"

using namespace postern::fetch;

namespace {

constexpr std::int64_t now = 1'800'000'000;
constexpr std::int64_t day = 86400;

uid_record rec(uid_outcome o, std::int64_t size, std::int64_t age = 0) {
  return {o, now - age, size};
}

plan_settings settings(bool keep = false) {
  plan_settings s;
  s.keep = keep;
  s.now = now;
  return s;
}

listed_action action(fetch_plan& p, const std::optional<uid_record>& r, std::uint64_t size) {
  return p.consider(r, size).action;
}

}  // namespace

TEST_CASE("fetch plan: a new message is fetched") {
  fetch_plan p(settings());
  CHECK(action(p, std::nullopt, 100) == listed_action::fetch);
  CHECK(p.to_fetch() == 1);
  CHECK(std::string(to_string(listed_action::fetch)) == "fetch");
}

TEST_CASE("fetch plan: delivered before: deleted unless kept, or kept long enough") {
  fetch_plan gone(settings(false));
  CHECK(action(gone, rec(uid_outcome::delivered, 100), 100) == listed_action::delete_old);
  CHECK(gone.to_fetch() == 0);  // never delivered twice

  fetch_plan kept(settings(true));
  CHECK(action(kept, rec(uid_outcome::delivered, 100), 100) == listed_action::leave_delivered);

  auto s = settings(true);
  s.delete_after = 30 * day;
  fetch_plan aged(s);
  CHECK(action(aged, rec(uid_outcome::delivered, 100, 29 * day), 100) ==
        listed_action::leave_delivered);
  CHECK(action(aged, rec(uid_outcome::delivered, 100, 30 * day), 100) == listed_action::delete_old);
}

TEST_CASE("fetch plan: seen at the first run, refused before, --retry-failed") {
  fetch_plan p(settings(true));
  CHECK(action(p, rec(uid_outcome::seen, 10), 10) == listed_action::leave_seen);
  CHECK(action(p, rec(uid_outcome::failed, 10), 10) == listed_action::hold_refused);
  auto s = settings(true);
  s.retry_failed = true;
  fetch_plan retry(s);
  CHECK(action(retry, rec(uid_outcome::failed, 10), 10) == listed_action::fetch);
  CHECK(action(retry, rec(uid_outcome::seen, 10), 10) == listed_action::leave_seen);
}

TEST_CASE("fetch plan: a UID reused for another message is a new message, never deleted") {
  fetch_plan p(settings(false));
  listed_decision d = p.consider(rec(uid_outcome::delivered, 100), 250);
  CHECK(d.uid_reused);
  CHECK(d.action == listed_action::fetch);
  CHECK_FALSE(d.learnt);
}

TEST_CASE("fetch plan: a version-1 record learns its size once, then counts as delivered") {
  fetch_plan p(settings(false));
  listed_decision d = p.consider(rec(uid_outcome::delivered, -1), 321);
  CHECK(d.action == listed_action::delete_old);
  CHECK_FALSE(d.uid_reused);
  REQUIRE(d.learnt);
  CHECK(d.learnt->size == 321);
  CHECK(d.learnt->outcome == uid_outcome::delivered);
}

TEST_CASE("fetch plan: oversize skipped or delivered, the per-run cap, dry runs") {
  auto s = settings();
  s.max_message_size = 1000;
  fetch_plan skip(s);
  CHECK(action(skip, std::nullopt, 1001) == listed_action::skip_oversize);
  CHECK(action(skip, std::nullopt, 1000) == listed_action::fetch);
  CHECK(skip.byte_limit() == 1000);

  s.skip_oversize = false;
  fetch_plan deliver(s);
  CHECK(action(deliver, std::nullopt, 5000) == listed_action::fetch);
  CHECK(deliver.byte_limit() == 0);

  auto c = settings();
  c.max_messages_per_run = 2;
  fetch_plan capped(c);
  CHECK(action(capped, std::nullopt, 1) == listed_action::fetch);
  CHECK(action(capped, rec(uid_outcome::delivered, 1), 1) == listed_action::delete_old);
  CHECK(action(capped, std::nullopt, 1) == listed_action::fetch);
  CHECK(action(capped, std::nullopt, 1) == listed_action::over_cap);
  CHECK(capped.to_fetch() == 2);

  auto d = settings(false);
  d.dry_run = true;
  fetch_plan dry(d);
  CHECK(action(dry, std::nullopt, 1) == listed_action::would_fetch);
  CHECK(action(dry, rec(uid_outcome::delivered, 1), 1) == listed_action::leave_delivered);
  CHECK_FALSE(dry.consider(rec(uid_outcome::delivered, -1), 5).learnt);  // changes nothing
  CHECK(dry.to_fetch() == 0);
}

TEST_CASE("fetch plan: what the target said decides record, DELE and stop") {
  fetch_plan p(settings(false));
  delivery_step s = p.after_delivery(target_said::delivered, true);
  CHECK(s.record == uid_outcome::delivered);  // recorded first ...
  CHECK(s.dele);                              // ... then deleted
  CHECK_FALSE(s.stop);

  s = p.after_delivery(target_said::permanent, true);
  CHECK(s.record == uid_outcome::failed);
  CHECK_FALSE(s.dele);  // a refused message stays on the server
  CHECK_FALSE(s.stop);

  s = p.after_delivery(target_said::temporary, true);
  CHECK_FALSE(s.record);
  CHECK_FALSE(s.dele);
  CHECK(s.stop);  // the rest waits: later messages would meet the same problem

  fetch_plan kept(settings(true));
  s = kept.after_delivery(target_said::delivered, true);
  CHECK(s.record == uid_outcome::delivered);
  CHECK_FALSE(s.dele);

  s = p.after_delivery(target_said::delivered, false);  // no UIDL: nothing to record
  CHECK_FALSE(s.record);
  CHECK(s.dele);

  s = fetch_plan::after_record_failure();
  CHECK_FALSE(s.dele);  // never deleted unrecorded: the next run delivers it again instead
  CHECK(s.stop);
}
