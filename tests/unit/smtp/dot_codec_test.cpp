#include <catch2/catch.hpp>

#include "forwarder/smtp/dot_codec.hpp"

using namespace postern::smtp;

namespace {

/// Decodes `wire` fed in pieces of `step` bytes; returns the message and what was left.
std::pair<std::string, std::string> decode(const std::string& wire, std::size_t step,
                                           dot_decoder& d) {
  std::string out;
  std::size_t pos = 0;
  while (pos < wire.size() && !d.done()) {
    std::size_t n = std::min(step, wire.size() - pos);
    pos += d.feed(wire.data() + pos, n, out);
  }
  return {out, wire.substr(pos)};
}

std::string encode(const std::string& message, std::size_t step) {
  dot_encoder e;
  std::string out;
  for (std::size_t pos = 0; pos < message.size(); pos += step)
    e.encode(message.data() + pos, std::min(step, message.size() - pos), out);
  e.finish(out);
  return out;
}

}  // namespace

TEST_CASE("dot_decoder undoes transparency and stops at the end marker, in any chunking") {
  const std::string wire =
      "Subject: x\r\n\r\n..leading dot\r\n..\r\nmiddle\r\n...\r\n.\r\nRSET\r\n";
  for (std::size_t step : {1, 2, 3, 7, 1000}) {
    dot_decoder d;
    auto [message, rest] = decode(wire, step, d);
    CHECK(d.done());
    CHECK(message == "Subject: x\r\n\r\n.leading dot\r\n.\r\nmiddle\r\n..\r\n");
    CHECK(rest == "RSET\r\n");
    CHECK_FALSE(d.ambiguous_dot());
  }
}

TEST_CASE("dot_decoder keeps 8-bit bytes, NULs, long lines and bare CRs") {
  std::string body = "caf\xc3\xa9 \x80\xff";
  body += '\0';
  body += std::string(5000, 'x') + "\rnot an end\r\n";
  dot_decoder d;
  auto [message, rest] = decode(body + ".\r\n", 13, d);
  CHECK(d.done());
  CHECK(message == body);
}

TEST_CASE("dot_decoder flags dots after bare LF (the SMTP smuggling ambiguity)") {
  for (const char* wire : {"a\n.\r\nb\r\n.\r\n", "a\r\n.\nb\r\n.\r\n", "a\n.x\r\n.\r\n"}) {
    dot_decoder d;
    auto [message, rest] = decode(wire, 1, d);
    CHECK(d.done());
    CHECK(d.ambiguous_dot());
  }
  dot_decoder d;
  decode("bare\nlf is fine\r\n.\r\n", 4, d);
  CHECK(d.done());
  CHECK_FALSE(d.ambiguous_dot());
}

TEST_CASE("dot_encoder stuffs every leading dot and terminates properly") {
  for (std::size_t step : {1, 5, 100}) {
    CHECK(encode(".a\r\nb\r\n.\r\n", step) == "..a\r\nb\r\n..\r\n.\r\n");
    CHECK(encode("no final newline", step) == "no final newline\r\n.\r\n");
    CHECK(encode("ends in CR\r", step) == "ends in CR\r\n.\r\n");
    CHECK(encode("bare LF\n", step) == "bare LF\n\r\n.\r\n");
  }
}

TEST_CASE("encode then decode is the identity for CRLF messages") {
  std::string message;
  for (int i = 0; i < 200; ++i) message += std::string(i % 7, '.') + std::to_string(i) + "\r\n";
  dot_decoder d;
  auto [back, rest] = decode(encode(message, 17), 11, d);
  CHECK(back == message);
  CHECK(rest.empty());
}

TEST_CASE("dot_decoder flags every bare CR, in any chunking, and nothing else") {
  struct sample {
    std::string wire;
    bool bare;
  };
  const std::vector<sample> samples = {
      {"a\r\nb\r\n.\r\n", false},    {"a\r\n\r\n.\r\n", false}, {"a\rb\r\n.\r\n", true},
      {"a\r\n\r.\r\r\n.\r\n", true},  // "\r.\r": an end of data to a lone-CR server
      {"a\r\n\r.\r\n.\r\n", true},   {"a\r\n\r.\n.\r\n", true}, {"a\r\n.\rb\r\n.\r\n", true},
      {"a\r\r\n.\r\n", true},        {"..\r\n.\r\n", false},
  };
  for (const auto& s : samples)
    for (std::size_t step : {1, 2, 3, 1000}) {
      dot_decoder d(true);
      decode(s.wire, step, d);
      INFO(s.wire << " in steps of " << step);
      CHECK(d.bare_cr() == s.bare);
    }
}
