#include <catch2/catch.hpp>

#include "fetch/pop3_protocol.hpp"

using namespace postern::fetch;

TEST_CASE("POP3 status lines") {
  auto ok = parse_status("+OK Dovecot ready.");
  REQUIRE(ok);
  CHECK(ok->ok);
  CHECK(ok->text == "Dovecot ready.");
  auto err = parse_status("-ERR [AUTH] Authentication failed.");
  REQUIRE(err);
  CHECK_FALSE(err->ok);
  CHECK(err->text == "[AUTH] Authentication failed.");
  CHECK(parse_status("+OK")->text.empty());
  CHECK_FALSE(parse_status("220 smtp.example ESMTP"));
  CHECK_FALSE(parse_status(""));
}

TEST_CASE("CAPA lists what the client may use") {
  auto caps = parse_capa({"TOP", "UIDL", "RESP-CODES", "PIPELINING", "SASL PLAIN login", "USER",
                          "STLS", "AUTH-RESP-CODE"});
  CHECK(caps.uidl);
  CHECK(caps.pipelining);
  CHECK(caps.stls);
  CHECK(caps.user);
  CHECK(caps.top);
  CHECK(caps.sasl == std::vector<std::string>{"PLAIN", "LOGIN"});
  CHECK_FALSE(parse_capa({"USER"}).uidl);
}

TEST_CASE("listings are held compactly and looked up by message number") {
  uid_listing uids;
  uids.add(1, "whqtswO00WBw418f9t5JxYwZ");
  uids.add(3, "x");
  REQUIRE(uids.size() == 2);
  CHECK(uids.number(1) == 3);
  CHECK(uids.uid(0) == "whqtswO00WBw418f9t5JxYwZ");
  CHECK(uids.uid(1) == "x");
  size_listing sizes;
  sizes.add(1, 100);
  sizes.add(3, 300);
  sizes.add(4, 400);
  CHECK(sizes.of(1) == 100u);
  CHECK(sizes.of(3) == 300u);  // not at its direct place: found by search
  CHECK(sizes.of(4) == 400u);
  CHECK_FALSE(sizes.of(2));
  CHECK_FALSE(sizes.of(9));
}

TEST_CASE("UIDL and LIST listings, and the malformed lines that must stop a run") {
  std::string error;
  auto u = parse_uidl_line("3 whqtswO00WBw418f9t5JxYwZ", &error);
  REQUIRE(u);
  CHECK(u->number == 3);
  CHECK(u->uid == "whqtswO00WBw418f9t5JxYwZ");
  auto l = parse_list_line("12 4096", &error);
  REQUIRE(l);
  CHECK((l->number == 12 && l->size == 4096));
  CHECK(parse_list_line("12 4096 extra", &error)->size == 4096);
  CHECK_FALSE(parse_uidl_line("0 abc", &error));
  CHECK_FALSE(parse_uidl_line("3", &error));
  CHECK(error == "malformed listing line \"3\"");
  CHECK_FALSE(parse_uidl_line("3 has space", &error));
  CHECK_FALSE(parse_uidl_line("3 " + std::string(71, 'x'), &error));
  CHECK(error.starts_with("malformed unique id"));
  CHECK_FALSE(parse_list_line("4 big", &error));
}
