#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "../temp_dir.hpp"
#include "fetch/local_targets.hpp"

using namespace postern::fetch;
namespace fs = std::filesystem;
using postern::test::temp_dir;

namespace {

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string mboxrd(const std::string& message, std::size_t step) {
  mboxrd_encoder e;
  std::string out;
  for (std::size_t pos = 0; pos < message.size(); pos += step)
    e.encode(message.substr(pos, step), out);
  e.finish(out);
  return out;
}

}  // namespace

TEST_CASE("a Maildir delivery appears in new/ whole, or not at all") {
  temp_dir t;
  const std::string box = (t.path / "Maildir").string();
  std::string error;
  {
    maildir_writer w;
    REQUIRE(w.begin(box, error));
    REQUIRE(w.write("Subject: x\r\n\r\n", error));
    REQUIRE(w.write("body \xff\r\n", error));
    REQUIRE(fs::is_empty(t.path / "Maildir" / "new"));  // nothing visible before commit
    REQUIRE(w.commit(error));
    CHECK(read(w.delivered_path()) == "Subject: x\r\n\r\nbody \xff\r\n");
    CHECK(w.delivered_path().ends_with(",S=22"));
  }
  {
    maildir_writer w;
    REQUIRE(w.begin(box, error));
    REQUIRE(w.write("half", error));
  }  // abandoned: removed from tmp/
  CHECK(fs::is_empty(t.path / "Maildir" / "tmp"));
  CHECK(std::distance(fs::directory_iterator(t.path / "Maildir" / "new"), {}) == 1);
}

TEST_CASE("mboxrd quotes ^>*From lines and turns CRLF into LF, in any chunking") {
  const std::string message =
      "From: a@b\r\nSubject: x\r\n\r\nFrom here\r\n>From there\r\n>>From\r\nFrom\r\n"
      "Fro\r\n>>\r\nbare\rcr\r\nno newline";
  const std::string expected =
      "From: a@b\nSubject: x\n\n>From here\n>>From there\n>>From\nFrom\nFro\n>>\nbare\rcr\n"
      "no newline\n\n";
  for (std::size_t step : {1, 2, 3, 7, 1000}) CHECK(mboxrd(message, step) == expected);
  CHECK(mboxrd_encoder::separator("u@pec.it", 0) == "From u@pec.it Thu Jan  1 00:00:00 1970\n");
  CHECK(mboxrd_encoder::separator("", 0).starts_with("From MAILER-DAEMON "));
}

TEST_CASE("the Received header postern-fetch prepends") {
  CHECK(received_header("pop3s.pec.aruba.it", "POP3S", "UID42", "u@example.it", "mx.example.it",
                        86400) ==
        "Received: from pop3s.pec.aruba.it by mx.example.it (postern-fetch) with POP3S id UID42"
        "\r\n\tfor <u@example.it>; Fri, 02 Jan 1970 00:00:00 +0000\r\n");
}
