#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "conf/forwarder_config.hpp"

using namespace postern::conf;
namespace fs = std::filesystem;

namespace {

/// A forwarder.toml with its mailboxes.toml and a private password file, in a temp dir.
struct config_dir {
  fs::path dir;
  explicit config_dir(const std::string& forwarder, const std::string& mailboxes) {
    char name[] = "/tmp/postern-fwd-XXXXXX";
    dir = ::mkdtemp(name);
    std::ofstream(dir / "forwarder.toml") << forwarder;
    std::ofstream(dir / "mailboxes.toml") << mailboxes;
    std::ofstream(dir / "secret") << "pw\n";
    ::chmod((dir / "secret").c_str(), 0600);
  }
  ~config_dir() { fs::remove_all(dir); }
  std::optional<forwarder_config> load(std::vector<std::string>* errors = nullptr) const {
    diagnostics d;
    auto c = load_forwarder_config(dir / "forwarder.toml", d);
    if (errors)
      for (const auto& item : d.items()) errors->push_back(item.to_string());
    return c;
  }
  std::string file(const char* name) const { return (dir / name).string(); }
};

const char* aruba = R"([[mailbox]]
address = "ufficio@pec.example.it"
provider = "aruba"
password_file = "secret"
)";

bool has(const std::vector<std::string>& errors, const std::string& text) {
  for (const auto& e : errors)
    if (e.find(text) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("a minimal forwarder.toml takes safe defaults and the preset's endpoints and limits") {
  config_dir d("", aruba);
  auto c = d.load();
  REQUIRE(c);
  CHECK(c->listen.front().to_string() == "127.0.0.1:10025");
  CHECK(c->allow.size() == 2);
  CHECK(c->match == sender_match::envelope_and_header);
  CHECK(c->fallback == default_action::reject);
  CHECK(c->bcc == bcc_policy::reject);
  REQUIRE(c->registry.mailboxes.size() == 1);
  const mailbox& m = c->registry.mailboxes.front();
  CHECK(m.smtp->to_string() == "smtps://smtps.pec.aruba.it:465");
  CHECK(m.pop3->to_string() == "pop3s://pop3s.pec.aruba.it:995");
  CHECK(m.pec);
  CHECK(m.login == "ufficio@pec.example.it");
  CHECK(m.limits.max_message_size == 100'000'000);
  CHECK(m.limits.size_divided_by_recipients);
  CHECK(m.limits.max_recipients == 500);
  CHECK(m.password_file == d.file("secret"));
  CHECK(c->registry.find("UFFICIO@pec.example.it") == &m);
}

TEST_CASE("preset values can be overridden per mailbox") {
  config_dir d("", R"([[mailbox]]
address = "m@legalmail.it"
provider = "legalmail"
login = "M1234567"
password_file = "secret"
messages_per_minute = 3
smtp = "smtps://other.example.it"
)");
  auto c = d.load();
  REQUIRE(c);
  const mailbox& m = c->registry.mailboxes.front();
  CHECK(m.limits.messages_per_minute == 3);
  CHECK(m.login == "M1234567");
  CHECK(m.smtp->to_string() == "smtps://other.example.it:465");
}

TEST_CASE("registry errors: every one, with file:line:col and the fix") {
  config_dir d("", R"([[mailbox]]
address = "a@pec.it"
provider = "arubba"

[[mailbox]]
address = "b@pec.it"
smtp = "pop3s://x.example.it"
password_file = "secret"

[[mailbox]]
address = "c@pec.it"
smtp = "smtp://mail.example.it"
password_file = "secret"
)");
  std::vector<std::string> errors;
  CHECK_FALSE(d.load(&errors));
  CHECK(has(errors, d.file("mailboxes.toml") + ":3:12: mailbox[0].provider: unknown provider "
                                               "\"arubba\" (did you mean \"aruba\"?)"));
  CHECK(has(errors, "mailbox[0].address: mailbox a@pec.it has no secret"));
  CHECK(has(errors, "mailbox[1].smtp: \"pop3s://x.example.it\" is not a smtp endpoint"));
  CHECK(has(errors,
            "mailbox[2].smtp: cleartext smtp://mail.example.it:25 would send the "
            "password unencrypted"));
}

TEST_CASE("a password file others can read is refused with the chmod that fixes it") {
  config_dir d("", aruba);
  ::chmod(d.file("secret").c_str(), 0644);
  std::vector<std::string> errors;
  CHECK_FALSE(d.load(&errors));
  CHECK(has(errors, "chmod 600"));
}

TEST_CASE("an inline password needs a private registry") {
  config_dir d("", R"([[mailbox]]
address = "a@pec.it"
provider = "aruba"
password = "inline"
)");
  ::chmod(d.file("mailboxes.toml").c_str(), 0644);
  std::vector<std::string> errors;
  CHECK_FALSE(d.load(&errors));
  CHECK(has(errors, "an inline password needs the registry file to be private"));
  ::chmod(d.file("mailboxes.toml").c_str(), 0600);
  auto c = d.load();
  REQUIRE(c);
  CHECK(c->registry.mailboxes.front().inline_password->reveal() == "inline");
}

TEST_CASE("forwarder.toml errors") {
  config_dir d(R"(listen = ["127.0.0.1"]
allow = ["10.0.0.1/8", "nonsense"]
match = "from"
tls_cert_file = "cert.pem"
[default]
action = "relay"
[pec]
bcc = "drop"
[timeouts]
comand = "5m"
)",
               aruba);
  std::vector<std::string> errors;
  CHECK_FALSE(d.load(&errors));
  CHECK(has(errors, "listen: missing port in \"127.0.0.1\" (write host:port)"));
  CHECK(has(errors, "allow: \"10.0.0.1/8\" has host bits set; did you mean 10.0.0.0/8?"));
  CHECK(has(errors, "allow: \"nonsense\" is not an address range"));
  CHECK(has(errors, "match: "));
  CHECK(has(errors, "STARTTLS needs both tls_cert_file and tls_key_file"));
  CHECK(has(errors, "default.action: action = \"relay\" needs relay ="));
  CHECK(has(errors, "pec.bcc: "));
  CHECK(has(errors, "timeouts.comand: unknown key (did you mean \"command\"?)"));
}

TEST_CASE("client address ranges") {
  auto lan = parse_cidr("192.168.10.0/24");
  REQUIRE(lan);
  const std::uint8_t inside[4] = {192, 168, 10, 77}, outside[4] = {192, 168, 11, 1};
  CHECK(lan->contains(inside, 4));
  CHECK_FALSE(lan->contains(outside, 4));
  const std::uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 10, 9};
  CHECK(lan->contains(mapped, 16));
  auto v6 = parse_cidr("::1");
  REQUIRE(v6);
  CHECK(v6->prefix == 128);
  CHECK_FALSE(v6->contains(inside, 4));
}

TEST_CASE("a range is private when it lies inside a loopback, private or link-local network") {
  auto is_private = [](const char* text) { return parse_cidr(text)->is_private(); };
  for (const char* inside :
       {"127.0.0.0/8", "127.0.0.1", "10.1.0.0/16", "172.16.0.0/12", "172.31.255.0/24",
        "192.168.10.0/24", "169.254.1.0/24", "::1", "fd12:3456::/32", "fe80::/64"})
    CHECK(is_private(inside));
  for (const char* beyond :
       {"0.0.0.0/0", "8.0.0.0/8", "172.15.0.0/16", "172.16.0.0/11", "192.168.0.0/15",
        "203.0.113.0/24", "::/0", "2001:db8::/32", "fc00::/6"})
    CHECK_FALSE(is_private(beyond));
  // A range within another of its family, and never across families.
  CHECK(parse_cidr("10.2.3.0/24")->within(*parse_cidr("10.0.0.0/8")));
  CHECK_FALSE(parse_cidr("10.0.0.0/8")->within(*parse_cidr("10.2.3.0/24")));
  CHECK_FALSE(parse_cidr("::ffff:10.0.0.1")->within(*parse_cidr("10.0.0.0/8")));
}
