#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>
#include <filesystem>
#include <fstream>

#include "conf/secret.hpp"

using namespace postern::conf;
namespace fs = std::filesystem;

namespace {
struct temp_file {
  fs::path path;
  temp_file(const std::string& content, mode_t mode) {
    char name[] = "/tmp/postern-secret-XXXXXX";
    int fd = ::mkstemp(name);
    ::close(fd);
    path = name;
    std::ofstream(path) << content;
    ::chmod(path.c_str(), mode);
  }
  ~temp_file() { fs::remove(path); }
};
}  // namespace

TEST_CASE("a private password file gives its first line") {
  temp_file f("s3cret\nignored\n", 0600);
  std::string error;
  auto s = read_password_file(f.path, &error);
  REQUIRE(s);
  CHECK(s->reveal() == "s3cret");
}

TEST_CASE("a password file readable by others is refused with the fix") {
  temp_file f("s3cret\n", 0644);
  std::string error;
  CHECK_FALSE(read_password_file(f.path, &error));
  CHECK(error == f.path.string() +
                     ": holds a secret but is accessible by group or others (mode 0644); run: "
                     "chmod 600 " +
                     f.path.string());
  CHECK(error.find("s3cret") == std::string::npos);
}

TEST_CASE("an empty password file is an error") {
  temp_file f("\n", 0400);
  std::string error;
  CHECK_FALSE(read_password_file(f.path, &error));
  CHECK(error == f.path.string() + ": the first line is empty");
}

TEST_CASE("secrets are wiped when moved from or dropped") {
  secret a("value");
  secret b(std::move(a));
  CHECK(a.empty());
  CHECK(b.reveal() == "value");
  b.wipe();
  CHECK(b.empty());
}
