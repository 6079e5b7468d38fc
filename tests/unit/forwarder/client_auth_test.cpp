#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "forwarder/client_auth.hpp"

using namespace postern::forwarder;
namespace fs = std::filesystem;

namespace {

struct users_file {
  fs::path dir, path;
  explicit users_file(const std::string& text, mode_t mode = 0600) {
    char name[] = "/tmp/postern-users-XXXXXX";
    dir = ::mkdtemp(name);
    path = dir / "users";
    std::ofstream(path) << text;
    ::chmod(path.c_str(), mode);
  }
  ~users_file() { fs::remove_all(dir); }
};

// `openssl passwd -6 -salt abcdefgh secret`
const char* hashed =
    "$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/1GM/"
    "O6IND4WQhG.";

}  // namespace

TEST_CASE("client users are checked against crypt(3) hashes") {
  users_file f(std::string("# comment\n\nexchange:") + hashed + "\n");
  std::string error;
  auto users = client_users::load(f.path, error);
  REQUIRE(users);
  CHECK(users->verify("exchange", "secret"));
  CHECK_FALSE(users->verify("exchange", "Secret"));
  CHECK_FALSE(users->verify("other", "secret"));
}

TEST_CASE("a users file with a cleartext password or open permissions is refused") {
  std::string error;
  users_file clear("exchange:secret\n");
  CHECK_FALSE(client_users::load(clear.path, error));
  CHECK(error.find("users:1: expected user:HASH") != std::string::npos);
  users_file open(std::string("exchange:") + hashed + "\n", 0644);
  CHECK_FALSE(client_users::load(open.path, error));
  CHECK(error.find("chmod 600") != std::string::npos);
}

TEST_CASE("PLAIN responses are split into user and password") {
  auto c = parse_plain_response(std::string("\0exchange\0pw", 12));
  REQUIRE(c);
  CHECK(c->user == "exchange");
  CHECK(c->password == "pw");
  CHECK(parse_plain_response(std::string("authz\0u\0p", 9))->user == "u");
  CHECK_FALSE(parse_plain_response("no separators"));
  CHECK_FALSE(parse_plain_response(std::string("\0\0pw", 4)));
}
