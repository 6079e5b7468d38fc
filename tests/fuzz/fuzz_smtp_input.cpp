// What SMTP clients and servers send the forwarder: command lines, MAIL/RCPT paths, reply
// lines, DATA bytes split anywhere, header blocks and address lists. Beyond "no crash":
// a header block re-serializes byte for byte, and dot-stuffing then unstuffing a CRLF message
// gives it back whatever the chunking.
#include <cstdlib>
#include <string>
#include <string_view>

#include "forwarder/smtp/command.hpp"
#include "forwarder/smtp/dot_codec.hpp"
#include "forwarder/smtp/message_header.hpp"
#include "forwarder/smtp/reply.hpp"

using namespace postern::smtp;

namespace {

void lines(std::string_view input) {
  reply_parser replies;
  std::size_t pos = 0;
  while (pos < input.size()) {
    auto nl = input.find('\n', pos);
    std::string_view line = input.substr(pos, nl == std::string_view::npos ? nl : nl - pos);
    pos = nl == std::string_view::npos ? input.size() : nl + 1;
    if (auto cmd = parse_command(line)) {
      std::string error;
      parse_mail_path(cmd->arg, "FROM", &error);
      parse_mail_path(cmd->arg, "TO", &error);
    }
    if (replies.feed(line) == reply_parser::status::done) parse_ehlo(replies.take());
  }
}

void transparency(std::string_view message, std::size_t step) {
  for (std::size_t i = 0; i < message.size(); ++i)
    if (message[i] == '\n' && (i == 0 || message[i - 1] != '\r')) return;  // CRLF only
  dot_encoder encoder;
  std::string wire;
  for (std::size_t pos = 0; pos < message.size(); pos += step)
    encoder.encode(message.data() + pos, std::min(step, message.size() - pos), wire);
  encoder.finish(wire);
  dot_decoder decoder;
  std::string back;
  std::size_t pos = 0;
  while (pos < wire.size() && !decoder.done())
    pos += decoder.feed(wire.data() + pos, std::min(step, wire.size() - pos), back);
  std::string expected(message);
  if (!expected.empty() && !expected.ends_with("\r\n"))
    expected += expected.back() == '\r' ? "\n" : "\r\n";
  if (!decoder.done() || pos != wire.size() || back != expected || decoder.ambiguous_dot())
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::size_t step = 1 + data[0] % 97;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  lines(input);
  header_block h = header_block::parse(input);
  if (h.serialize() != input) std::abort();
  for (const auto& f : h.fields()) parse_address_list(f.value());
  header_end(input);
  transparency(input, step);
  // Arbitrary client bytes after DATA: never more consumed than given.
  dot_decoder d(true);
  std::string out;
  for (std::size_t pos = 0; pos < input.size() && !d.done();) {
    std::size_t n = std::min(step, input.size() - pos);
    std::size_t used = d.feed(input.data() + pos, n, out);
    if (used > n || (used < n && !d.done())) std::abort();
    pos += used;
  }
  return 0;
}
