// The POP3 client machine driven by a hostile server: the first byte chooses the settings
// and the driver's answers, the rest is the server's lines. Beyond "no crash": with STLS
// required, no USER, PASS or AUTH leaves before TLS is up; every command ends with CRLF and
// holds no other line break; the deletions counted never exceed the DELEs sent.
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "fetch/pop3_machine.hpp"

using namespace postern;
using namespace postern::fetch;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t flags = data[0];
  std::vector<std::string> lines;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  for (std::size_t pos = 0; pos < input.size();) {
    auto nl = input.find('\n', pos);
    std::string line(input.substr(pos, nl == std::string_view::npos ? nl : nl - pos));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    pos = nl == std::string_view::npos ? input.size() : nl + 1;
  }
  using kind = pop3_machine::action::kind;
  pop3_machine::settings s;
  s.stls = flags & 1;
  s.implicit_tls = !s.stls && (flags & 2);
  s.login = "user";
  s.server = "pop.fuzz:110";
  pop3_machine m(s);
  bool tls_up = s.implicit_tls;
  std::uint32_t deles = 0;
  std::uint32_t operation = 0;
  std::size_t next = 0;
  auto a = m.open();
  auto take_line = [&]() -> const std::string* {
    return next < lines.size() ? &lines[next++] : nullptr;
  };
  for (std::size_t steps = 0; steps < 4 * lines.size() + 100; ++steps) {
    if (a.what == kind::send || a.what == kind::queue) {
      const std::string& b = a.bytes;
      if (!b.ends_with("\r\n") || b.find_first_of("\r\n") != b.size() - 2) std::abort();
      if (s.stls && !tls_up &&
          (b.starts_with("USER") || b.starts_with("PASS") || b.starts_with("AUTH")))
        std::abort();  // a password in cleartext
      if (b.starts_with("DELE")) ++deles;
    }
    if (m.deletions() > deles) std::abort();
    switch (a.what) {
      case kind::send:
      case kind::read_status: {
        const std::string* line = take_line();
        if (!line) return 0;
        a = a.line ? m.on_line(*line, next < lines.size() && (flags & 4))
                   : m.on_status(parse_status(*line));
        break;
      }
      case kind::read_lines: {
        std::vector<std::string> listing;
        while (const std::string* line = take_line()) {
          if (*line == ".") break;
          listing.push_back(*line);
        }
        a = a.capa ? m.on_capa(listing) : m.on_lines_done();
        break;
      }
      case kind::read_body:
        while (const std::string* line = take_line())
          if (*line == ".") break;
        a = m.on_body_done();
        break;
      case kind::start_tls:
        tls_up = flags & 8;
        a = m.on_tls(tls_up ? pop3_result{} : pop3_result{failure_kind::tls, {}, "fuzz"});
        break;
      case kind::password: a = m.on_password(conf::secret("pw"), ""); break;
      case kind::queue:
      case kind::done: {
        if (m.broken()) return 0;
        const std::uint32_t n = 1 + operation % 3;
        switch (operation++ % 5) {
          case 0: a = m.listing("UIDL"); break;
          case 1: a = m.request_retr(n); break;
          case 2: a = m.retr(n); break;
          case 3: a = m.dele(n); break;
          default: a = m.quit(); break;
        }
        break;
      }
    }
  }
  return 0;
}
