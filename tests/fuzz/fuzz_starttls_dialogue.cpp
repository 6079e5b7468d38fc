// STARTTLS preamble: any server bytes, split anywhere, for every protocol. Whatever it
// decides to send is one CRLF-terminated command, and a decision to start TLS never
// leaves server bytes behind (the injection rule).
#include <cstdlib>
#include <string_view>

#include "tunnel/net/starttls_dialogue.hpp"

using namespace postern::net;
using postern::conf::app_protocol;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const app_protocol protocols[] = {app_protocol::smtp, app_protocol::pop3, app_protocol::imap};
  starttls_dialogue d(protocols[data[0] % 3], "fuzz.example");
  std::size_t step = 1 + data[1] % 64;
  std::string_view input(reinterpret_cast<const char*>(data + 2), size - 2);
  for (std::size_t pos = 0; pos < input.size(); pos += step) {
    auto s = d.on_input(input.substr(pos, step));
    while (s.what == starttls_dialogue::action::send) {
      if (s.data.size() < 2 || s.data.substr(s.data.size() - 2) != "\r\n") std::abort();
      s = d.on_input({});
    }
    if (s.what == starttls_dialogue::action::start_tls && pos + step < input.size()) return 0;
    if (s.what != starttls_dialogue::action::read_more) return 0;
  }
  return 0;
}
