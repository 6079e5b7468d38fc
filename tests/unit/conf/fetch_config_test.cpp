#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "conf/fetch_config.hpp"

using namespace postern::conf;
namespace fs = std::filesystem;

namespace {

struct fetch_dir {
  fs::path dir;
  fetch_dir(const std::string& fetch, const std::string& mailboxes) {
    char name[] = "/tmp/postern-fetchconf-XXXXXX";
    dir = ::mkdtemp(name);
    std::ofstream(dir / "fetch.toml") << fetch;
    std::ofstream(dir / "mailboxes.toml") << mailboxes;
    std::ofstream(dir / "secret") << "pw\n";
    ::chmod((dir / "secret").c_str(), 0600);
  }
  ~fetch_dir() { fs::remove_all(dir); }
  std::optional<fetch_config> load(std::vector<std::string>* errors = nullptr) const {
    diagnostics d;
    auto c = load_fetch_config(dir / "fetch.toml", d);
    if (errors)
      for (const auto& item : d.items()) errors->push_back(item.to_string());
    return c;
  }
};

bool has(const std::vector<std::string>& errors, const std::string& text) {
  for (const auto& e : errors)
    if (e.find(text) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("delivery targets") {
  std::string error;
  CHECK(parse_target("smtp://127.0.0.1:25", &error)->kind == target_kind::smtp);
  CHECK(parse_target("lmtp:/run/dovecot/lmtp", &error)->kind == target_kind::lmtp);
  auto exec = parse_target("exec:/usr/sbin/sendmail -i -f {sender} {recipient}", &error);
  REQUIRE(exec);
  CHECK(exec->argv ==
        std::vector<std::string>{"/usr/sbin/sendmail", "-i", "-f", "{sender}", "{recipient}"});
  CHECK(parse_target("maildir:/var/mail/pec", &error)->path == "/var/mail/pec");
  CHECK(parse_target("-", &error)->kind == target_kind::stdout_mbox);
  CHECK_FALSE(parse_target("maildir:relative", &error));
  CHECK(error.find("absolute path") != std::string::npos);
  CHECK_FALSE(parse_target("exec:sendmail", &error));
  CHECK_FALSE(parse_target("pop3s://x", &error));
  CHECK(error.find("is not a delivery target") != std::string::npos);
}

TEST_CASE("fetch.toml with the registry: defaults and per-mailbox checks") {
  fetch_dir d("deliver = \"smtp://127.0.0.1:25\"\nstate_dir = \"state\"\n",
              "[[mailbox]]\naddress = \"u@pec.it\"\nprovider = \"aruba\"\n"
              "password_file = \"secret\"\ndeliver_to = \"u@example.it\"\n");
  auto c = d.load();
  REQUIRE(c);
  CHECK(c->state_dir == (d.dir / "state").string());
  CHECK_FALSE(c->keep);  // unset: PEC mailboxes keep their mail
  CHECK(c->concurrency == 2);
  CHECK(c->registry.mailboxes.front().pop3->to_string() == "pop3s://pop3s.pec.aruba.it:995");
}

TEST_CASE("fetch.toml errors name the mailbox and the fix") {
  fetch_dir d("keep = false\ndelete_after = \"30d\"\noversize = \"drop\"\n",
              "[[mailbox]]\naddress = \"r@pec.it\"\nprovider = \"register\"\n"
              "password_file = \"secret\"\n");
  std::vector<std::string> errors;
  CHECK_FALSE(d.load(&errors));
  CHECK(has(errors, "delete_after: applies only with keep = true"));
  CHECK(has(errors, "oversize: "));
}

TEST_CASE("a fetched mailbox needs a POP3 or IMAP endpoint and a target") {
  fetch_dir d("",
              "[[mailbox]]\naddress = \"r@pec.it\"\nsmtp = \"smtps://smtp.pec.it\"\n"
              "password_file = \"secret\"\n");
  std::vector<std::string> errors;
  CHECK_FALSE(d.load(&errors));
  CHECK(has(errors,
            "r@pec.it is fetched but has no pop3 or imap endpoint: set one, or fetch = false"));
  CHECK(has(errors, "r@pec.it has no delivery target"));
}

TEST_CASE("IMAP keys: a provider with IMAP only is fetched over IMAP, folders, after") {
  fetch_dir d("deliver = \"-\"\n",
              "[[mailbox]]\naddress = \"r@pec.it\"\nprovider = \"register\"\n"
              "password_file = \"secret\"\nfolders = [\"INBOX\", \"Ricevute\"]\n"
              "after = \"move:Archivio\"\nmax_connections = 3\n"
              "[[mailbox]]\naddress = \"a@pec.it\"\nprovider = \"aruba\"\n"
              "password_file = \"secret\"\n"
              "[[mailbox]]\naddress = \"b@pec.it\"\nprovider = \"aruba\"\n"
              "password_file = \"secret\"\nfetch_protocol = \"imap\"\n");
  std::vector<std::string> errors;
  auto c = d.load(&errors);
  REQUIRE(c);
  const auto& r = c->registry.mailboxes[0];
  CHECK(r.protocol == postern::conf::fetch_protocol::imap);
  REQUIRE(r.imap);
  CHECK(r.imap->to_string() == "imaps://imap.pec-email.com:993");
  CHECK(r.folders == std::vector<std::string>{"INBOX", "Ricevute"});
  REQUIRE(r.after);
  CHECK(r.after->to_string() == "move:Archivio");
  CHECK(r.max_connections == 3);
  CHECK(c->registry.mailboxes[1].protocol ==
        postern::conf::fetch_protocol::pop3);  // POP3 stays default
  CHECK_FALSE(c->registry.mailboxes[1].after);
  CHECK(c->registry.mailboxes[2].protocol == postern::conf::fetch_protocol::imap);
}

TEST_CASE("IMAP keys: what would not work is refused at load") {
  fetch_dir d("deliver = \"-\"\n",
              "[[mailbox]]\naddress = \"r@pec.it\"\nsmtp = \"smtps://smtp.pec.it\"\n"
              "pop3 = \"pop3s://pop3.pec.it\"\npassword_file = \"secret\"\n"
              "fetch_protocol = \"imap\"\nafter = \"archive\"\nfolders = []\n"
              "[[mailbox]]\naddress = \"s@pec.it\"\nimap = \"pop3s://pop3.pec.it\"\n"
              "password_file = \"secret\"\n"
              "[[mailbox]]\naddress = \"t@pec.it\"\nimap = \"imap://imap.pec.it\"\n"
              "password_file = \"secret\"\nafter = \"move:INBOX\"\n");
  std::vector<std::string> errors;
  CHECK_FALSE(d.load(&errors));
  CHECK(has(errors, "fetch_protocol = \"imap\" but the mailbox has no imap endpoint"));
  CHECK(has(errors, "\"archive\" is not one of \"keep\", \"seen\", \"move:FOLDER\", \"delete\""));
  CHECK(has(errors, "folders: needs at least one folder"));
  CHECK(has(errors, "is not an imap endpoint (use imaps://, imap+starttls:// or imap://)"));
  CHECK(has(errors, "cleartext imap://imap.pec.it:143 would send the password unencrypted"));
  CHECK(has(errors, "moves into INBOX, which is also fetched"));
}

TEST_CASE("[timeouts] idle: at most RFC 2177's 29 minutes") {
  fetch_dir d("deliver = \"-\"\n[timeouts]\nidle = \"30m\"\n",
              "[[mailbox]]\naddress = \"r@pec.it\"\nprovider = \"register\"\n"
              "password_file = \"secret\"\n");
  std::vector<std::string> errors;
  CHECK_FALSE(d.load(&errors));
  CHECK(has(errors, "idle: at most 29m"));
}
