#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>
#include <filesystem>
#include <fstream>

#include "conf/tunnel_config.hpp"

using namespace postern::conf;
namespace fs = std::filesystem;

namespace {

struct config_file {
  fs::path dir;
  fs::path path;
  explicit config_file(const std::string& text) {
    char name[] = "/tmp/postern-conf-XXXXXX";
    dir = ::mkdtemp(name);
    path = dir / "tunnel.toml";
    std::ofstream(path) << text;
  }
  ~config_file() { fs::remove_all(dir); }
  std::string at(int line, int col) const {
    return path.string() + ":" + std::to_string(line) + ":" + std::to_string(col) + ": ";
  }
};

std::vector<std::string> errors_of(const config_file& f) {
  diagnostics d;
  auto c = load_tunnel_config(f.path, d);
  CHECK_FALSE(c);
  std::vector<std::string> out;
  for (const auto& item : d.items()) out.push_back(item.to_string());
  return out;
}

const char* good = R"([[service]]
name = "pec-smtp"
mode = "client"
accept = "127.0.0.1:5001"
connect = "smtps.pec.aruba.it:465"
)";

}  // namespace

TEST_CASE("the classic PEC tunnel loads with secure defaults") {
  config_file f(good);
  diagnostics d;
  auto c = load_tunnel_config(f.path, d);
  INFO(d.to_string());
  REQUIRE(c);
  REQUIRE(c->services.size() == 1);
  const auto& s = c->services[0];
  CHECK(s.mode == tunnel_mode::client);
  CHECK(s.accept.port == 5001);
  CHECK(s.connect[0].host == "smtps.pec.aruba.it");
  CHECK(s.tls.verify == verify_mode::full);
  CHECK(s.tls.min_version == tls_version::tls1_2);
  CHECK(s.timeouts.connect == std::chrono::seconds(10));
}

TEST_CASE("every error is reported with file:line:col and key path") {
  config_file f(R"([[service]]
name = "a"
mode = "clinet"
accept = "127.0.0.1"
connect = ["h:1", 5]
idle_timout = "5m"
)");
  auto errors = errors_of(f);
  REQUIRE(errors.size() == 4);
  CHECK(errors[0] == f.at(3, 8) +
                         "service[0].mode: invalid value \"clinet\" (expected \"client\" "
                         "or \"server\"); did you mean \"client\"?");
  CHECK(errors[1] ==
        f.at(4, 10) + "service[0].accept: missing port in \"127.0.0.1\" (write host:port)");
  CHECK(errors[2] ==
        f.at(5, 19) + "service[0].connect: expected strings in the array, got an integer");
  CHECK(errors[3] ==
        f.at(6, 1) + "service[0].idle_timout: unknown key (did you mean \"idle_timeout\"?)");
}

TEST_CASE("TOML syntax errors carry their position") {
  config_file f("[[service]]\nname = \"a\nmode = 1\n");
  auto errors = errors_of(f);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].starts_with(f.path.string() + ":2:"));
}

TEST_CASE("mode-specific keys are refused in the other mode") {
  config_file f(std::string(good) + "client_ca_file = \"/etc/ca.pem\"\n");
  auto errors = errors_of(f);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] == f.at(6, 18) + "service[0].client_ca_file: applies only to mode = \"server\"");
}

TEST_CASE("a plaintext side off this host needs allow_cleartext") {
  config_file f(R"([[service]]
name = "in"
mode = "server"
accept = "0.0.0.0:465"
connect = "10.1.2.3:25"
cert_file = "/nonexistent.pem"
key_file = "/nonexistent.key"
)");
  auto errors = errors_of(f);
  REQUIRE(errors.size() == 3);
  CHECK(errors[0] ==
        f.at(5, 11) +
            "service[0].connect: plaintext target 10.1.2.3:25 is not on this host; set "
            "allow_cleartext = true if the network in between is trusted");
  // Both missing files, each at its own key.
  CHECK(errors[1] ==
        f.at(6, 13) +
            "service[0].cert_file: /nonexistent.pem: cannot read: No such file or directory");
  CHECK(errors[2] ==
        f.at(7, 12) +
            "service[0].key_file: /nonexistent.key: cannot read: No such file or directory");
}

TEST_CASE("a world-readable key file is refused with the fix") {
  config_file f(good);
  auto key = f.dir / "k.pem";
  std::ofstream(key) << "x";
  ::chmod(key.c_str(), 0644);
  std::ofstream(f.path, std::ios::app) << "cert_file = \"" << (f.dir / "c.pem").string()
                                       << "\"\nkey_file = \"" << key.string() << "\"\n";
  auto errors = errors_of(f);
  REQUIRE(errors.size() == 2);  // c.pem does not exist either
  CHECK(errors[1] == f.at(7, 12) + "service[0].key_file: " + key.string() +
                         ": holds a secret but is accessible by group or others (mode 0644); run: "
                         "chmod 600 " +
                         key.string());
}

TEST_CASE("pins must be base64 SHA-256 digests") {
  config_file f(std::string(good) + "pin_sha256 = [\"abc\"]\n");
  auto errors = errors_of(f);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].starts_with(f.at(6, 14) +
                              "service[0].pin_sha256: \"abc\" is not a base64 SHA-256 digest"));
}

TEST_CASE("duplicate names and accept addresses are refused") {
  config_file f(std::string(good) + good);
  auto errors = errors_of(f);
  REQUIRE(errors.size() == 2);
  CHECK(errors[0] == f.at(7, 8) + "service[1].name: service name \"pec-smtp\" is used twice");
  CHECK(errors[1] ==
        f.at(9, 10) + "service[1].accept: 127.0.0.1:5001 is already used by another service");
}

TEST_CASE("a file with no service says so") {
  config_file f("threads = 2\n");
  auto errors = errors_of(f);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] == f.path.string() + ":1:1: service: no [[service]] defined: nothing to do");
}

TEST_CASE("TLS to a unix socket needs a name to verify") {
  config_file f(R"([[service]]
name = "u"
mode = "client"
accept = "127.0.0.1:1"
connect = "unix:/run/tls.sock"
)");
  auto errors = errors_of(f);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] ==
        f.at(5, 11) +
            "service[0].connect: TLS to unix:/run/tls.sock needs verify_host: the name "
            "its certificate must carry");
}

TEST_CASE("relative paths are relative to the configuration file") {
  config_file f(R"([[service]]
name = "in"
mode = "server"
accept = "127.0.0.1:4465"
connect = "127.0.0.1:25"
cert_file = "certs/server.pem"
key_file = "certs/server.key"
)");
  auto errors = errors_of(f);
  REQUIRE(errors.size() == 2);
  CHECK(errors[0] == f.at(6, 13) +
                         "service[0].cert_file: " + (f.dir / "certs/server.pem").string() +
                         ": cannot read: No such file or directory");
  CHECK(errors[1] == f.at(7, 12) + "service[0].key_file: " + (f.dir / "certs/server.key").string() +
                         ": cannot read: No such file or directory");
}

TEST_CASE("a server needs both halves of its certificate, each reported at its place") {
  config_file f(R"([[service]]
name = "in"
mode = "server"
accept = "127.0.0.1:4465"
connect = "127.0.0.1:25"
)");
  auto errors = errors_of(f);
  REQUIRE(errors.size() == 2);
  CHECK(errors[0] ==
        f.at(1, 1) + "service[0].cert_file: mode = \"server\" needs cert_file and key_file");
  CHECK(errors[1] ==
        f.at(1, 1) + "service[0].key_file: mode = \"server\" needs cert_file and key_file");
}
