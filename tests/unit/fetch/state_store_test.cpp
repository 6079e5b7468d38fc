#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "../temp_dir.hpp"
#include "fetch/state_store.hpp"

using namespace postern::fetch;
namespace fs = std::filesystem;
using postern::test::temp_dir;

namespace {

std::unique_ptr<state_store> open_ok(const fs::path& dir, const std::string& box = "u@pec.it") {
  auto o = state_store::open((dir / "state").string(), box);
  REQUIRE(o.status == state_store::open_status::ok);
  return std::move(o.store);
}

}  // namespace

TEST_CASE("records survive reopening; forgotten ones do not") {
  temp_dir t;
  std::string error;
  {
    auto s = open_ok(t.path);
    CHECK_FALSE(s->existed());
    CHECK(s->record("uid-1", uid_outcome::delivered, 1000, 512, error));
    CHECK(s->record("uid-2", uid_outcome::failed, 1001, 600, error));
    CHECK(s->record("uid-3", uid_outcome::delivered, 1002, 700, error));
    CHECK(s->record("uid-4", uid_outcome::seen, 1003, 800, error));
    CHECK(s->forget({"uid-3"}, error));
    CHECK(s->size() == 3);
  }
  auto s = open_ok(t.path);
  CHECK(s->existed());
  REQUIRE(s->find("uid-1"));
  CHECK(s->find("uid-1")->time == 1000);
  CHECK(s->find("uid-1")->size == 512);
  CHECK(s->find("uid-2")->outcome == uid_outcome::failed);
  CHECK(s->find("uid-4")->outcome == uid_outcome::seen);
  CHECK_FALSE(s->find("uid-3"));
  CHECK(s->size() == 3);
  CHECK((fs::status(s->path()).permissions() & fs::perms::others_read) == fs::perms::none);
}

TEST_CASE("a second run on the same mailbox is refused while the first holds it") {
  temp_dir t;
  auto first = open_ok(t.path);
  auto second = state_store::open((t.path / "state").string(), "U@PEC.IT");
  CHECK(second.status == state_store::open_status::busy);
  CHECK(second.error.find("another run holds") != std::string::npos);
  first.reset();
  CHECK(state_store::open((t.path / "state").string(), "u@pec.it").status ==
        state_store::open_status::ok);
}

TEST_CASE("a record torn by a crash is dropped, real corruption stops the mailbox") {
  temp_dir t;
  fs::create_directories(t.path / "state");
  const auto file = t.path / "state" / state_store::file_name("u@pec.it");
  std::ofstream(file) << "postern-fetch-state 1\nD 1000 uid-1\nD 10";
  auto s = open_ok(t.path);
  CHECK(s->size() == 1);
  s.reset();
  std::ofstream(file) << "postern-fetch-state 1\nD 1000 uid-1\nGARBAGE\n";
  auto bad = state_store::open((t.path / "state").string(), "u@pec.it");
  CHECK(bad.status == state_store::open_status::error);
  CHECK(bad.error == file.string() +
                         ":3: corrupt record; fix or remove the line (a removed line "
                         "means that message may be fetched again)");
  std::ofstream(file) << "something else\n";
  bad = state_store::open((t.path / "state").string(), "u@pec.it");
  CHECK(bad.error.find(":1: not a postern-fetch state file") != std::string::npos);
}

TEST_CASE("state file names are safe whatever the address") {
  CHECK(state_store::file_name("Ufficio@PEC.example.it") == "ufficio@pec.example.it.state");
  CHECK(state_store::file_name("a/../b@x") == "a%2F..%2Fb@x.state");
}

TEST_CASE("a mailbox without state leaves no file until something is recorded") {
  temp_dir t;
  { auto s = open_ok(t.path); }
  CHECK_FALSE(fs::exists(t.path / "state" / state_store::file_name("u@pec.it")));
  auto s = open_ok(t.path);
  CHECK_FALSE(s->existed());
}

TEST_CASE("a version 1 file is read, sizes unknown, and rewritten as version 3") {
  temp_dir t;
  fs::create_directories(t.path / "state");
  const auto file = t.path / "state" / state_store::file_name("u@pec.it");
  std::ofstream(file) << "postern-fetch-state 1\nD 1000 uid-1\nF 1001 uid 2 with spaces\n";
  {
    auto s = open_ok(t.path);
    REQUIRE(s->find("uid-1"));
    CHECK(s->find("uid-1")->size == -1);
    CHECK(s->find("uid 2 with spaces")->outcome == uid_outcome::failed);
    std::string error;
    CHECK(s->record("uid-1", uid_outcome::delivered, 1000, 42, error));
    CHECK(s->compact(error));
  }
  std::ifstream in(file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text == "postern-fetch-state 3\nF 1001 - - uid 2 with spaces\nD 1000 42 - uid-1\n");
}

TEST_CASE("version 3: digests and named values survive the journal and a compaction") {
  temp_dir t;
  std::string error;
  const std::string d1(64, 'a'), d2 = std::string(63, '0') + "f";
  {
    auto o = state_store::open((t.path / "state").string(), "u@pec.it", "imap INBOX");
    REQUIRE(o.status == state_store::open_status::ok);
    auto& s = *o.store;
    CHECK(s.record("7/1", uid_outcome::delivered, 1000, 512, error, d1));
    CHECK(s.record("7/2", uid_outcome::delivered, 1001, 600, error));
    s.set_meta("uidvalidity", "7");
    CHECK(s.compact(error));
    CHECK(s.record("7/3", uid_outcome::failed, 1002, 700, error, d2));
    CHECK(s.record("7/1", uid_outcome::delivered, 1003, 512, error, d2));  // replaced
  }
  {
    auto o = state_store::open((t.path / "state").string(), "u@pec.it", "imap INBOX");
    REQUIRE(o.status == state_store::open_status::ok);
    auto& s = *o.store;
    CHECK(s.meta("uidvalidity") == "7");
    CHECK(s.meta("absent").empty());
    REQUIRE(s.find("7/1"));
    CHECK(s.find("7/1")->digest == d2);
    CHECK(s.find("7/1")->time == 1003);
    CHECK(s.find("7/2")->digest.empty());
    CHECK(s.find("7/3")->digest == d2);
    std::vector<std::string> seen;
    s.for_each([&](std::string_view uid, const uid_record& r) {
      seen.push_back(std::string(uid) + " " + (r.digest.empty() ? "-" : r.digest.substr(60)));
    });
    CHECK(seen == std::vector<std::string>{"7/1 000f", "7/2 -", "7/3 000f"});
    s.set_meta("uidvalidity", "8");
    CHECK(s.compact(error));
  }
  // The POP3 state of the same mailbox is another file.
  auto pop3 = open_ok(t.path);
  CHECK_FALSE(pop3->existed());
  CHECK(state_store::file_name("u@pec.it", "imap INBOX") == "u@pec.it%20imap%20inbox.state");
  std::ifstream in(t.path / "state" / state_store::file_name("u@pec.it", "imap INBOX"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text.starts_with("postern-fetch-state 3\nM uidvalidity 8\nD 1003 512 " + d2 + " 7/1\n"));
}

TEST_CASE("version 3: a malformed digest or named value is a corrupt file, not a guess") {
  temp_dir t;
  fs::create_directories(t.path / "state");
  const auto file = t.path / "state" / state_store::file_name("u@pec.it");
  for (const char* bad :
       {"postern-fetch-state 3\nD 1 2 xyz 7/1\n", "postern-fetch-state 3\nM novalue\n"}) {
    std::ofstream(file) << bad;
    auto o = state_store::open((t.path / "state").string(), "u@pec.it");
    CHECK(o.status == state_store::open_status::error);
    CHECK(o.error.find("corrupt") != std::string::npos);
  }
}

TEST_CASE("later records of a UID win, in memory and across a compaction") {
  temp_dir t;
  std::string error;
  {
    auto s = open_ok(t.path);
    for (int i = 0; i < 1000; ++i)
      REQUIRE(s->record("u" + std::to_string(i), uid_outcome::delivered, i, i, error));
    CHECK(s->compact(error));
    CHECK(s->record("u5", uid_outcome::failed, 9, 9, error));
    CHECK(s->forget({"u6"}, error));
    CHECK(s->find("u5")->outcome == uid_outcome::failed);
    CHECK_FALSE(s->find("u6"));
    CHECK(s->size() == 999);
  }
  auto s = open_ok(t.path);
  CHECK(s->size() == 999);
  CHECK(s->find("u5")->outcome == uid_outcome::failed);
  CHECK(s->find("u999")->size == 999);
  CHECK_FALSE(s->find("u6"));
}

TEST_CASE("noted records are written by the next compaction, all at once") {
  temp_dir t;
  std::string error;
  {
    auto s = open_ok(t.path);
    s->note("seen-1", {uid_outcome::seen, 5, 10});
    s->note("seen-2", {uid_outcome::seen, 5, 20});
    CHECK(s->find("seen-2")->size == 20);
    // Not on disk yet: a run killed now leaves no state at all.
    CHECK_FALSE(fs::exists(t.path / "state" / state_store::file_name("u@pec.it")));
    CHECK(s->compact(error));
  }
  auto s = open_ok(t.path);
  CHECK(s->size() == 2);
  CHECK(s->find("seen-1")->outcome == uid_outcome::seen);
}
