// What an IMAP server sends, to the parser and to the client machine: the first byte chooses
// the settings and the driver's answers, the rest is split into responses (a line, and with a
// trailing literal its octets and the line after them, as imap_client assembles them). Beyond
// "no crash": with STARTTLS required, no LOGIN or AUTHENTICATE leaves before TLS is up; every
// command ends with CRLF and (LOGIN's literal aside) holds no other line break; an EXPUNGE is
// always a UID EXPUNGE; the expunges counted never exceed those sent.
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "fetch/imap_machine.hpp"

using namespace postern;
using namespace postern::fetch;

namespace {

/// The input as imap_client would assemble responses; bodies stand as empty literals.
std::vector<std::string> responses(std::string_view input, imap_machine& m) {
  std::vector<std::string> out;
  std::string wire;
  for (std::size_t pos = 0; pos < input.size();) {
    auto nl = input.find('\n', pos);
    std::string line(input.substr(pos, nl == std::string_view::npos ? nl : nl - pos));
    pos = nl == std::string_view::npos ? input.size() : nl + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto n = trailing_literal(line);
    if (!n) {
      out.push_back(wire + line);
      wire.clear();
      continue;
    }
    const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(*n, input.size() - pos));
    if (wire.empty() && m.on_literal(line) != imap_machine::literal_use::collect) {
      wire += line.substr(0, line.rfind('{')) + "{0}\r\n";
    } else {
      wire += line + "\r\n";
      wire.append(input.substr(pos, take));
    }
    pos += take;
  }
  return out;
}

void check_command(const std::string& b, bool tls_required, bool tls_up, std::uint32_t& expunges) {
  if (!b.ends_with("\r\n")) std::abort();
  const bool login = b.find(" LOGIN ") != std::string::npos;
  if (!login && b.find_first_of("\r\n") != b.size() - 2) std::abort();
  if (tls_required && !tls_up && (login || b.find(" AUTHENTICATE ") != std::string::npos))
    std::abort();  // a password in cleartext
  if (b.find(" EXPUNGE") != std::string::npos) {
    if (b.find(" UID EXPUNGE ") == std::string::npos) std::abort();  // never a bare EXPUNGE
    ++expunges;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t flags = data[0];
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  using kind = imap_machine::action::kind;
  imap_machine::settings s;
  s.starttls = flags & 1;
  s.implicit_tls = !s.starttls && (flags & 2);
  s.login = "user";
  s.server = "imap.fuzz:143";
  imap_machine m(s);
  const std::vector<std::string> wire = responses(input, m);
  // The pure functions see every response too.
  std::string error;
  for (const auto& w : wire) {
    if (auto r = parse_imap_response(w, error)) {
      parse_imap_capabilities(r->words);
      capability_words(r->code_arg);
      parse_uid_set(r->uid_set, 100'000);
    }
    imap_folder_name(w);
    imap_astring(w);
  }
  bool tls_up = s.implicit_tls;
  std::uint32_t expunges = 0, operation = 0;
  std::size_t next = 0;
  auto a = m.open();
  for (std::size_t steps = 0; steps < 4 * wire.size() + 100; ++steps) {
    if (a.what == kind::send || a.what == kind::queue)
      check_command(a.bytes, s.starttls, tls_up, expunges);
    if (m.expunged() > 1000 * expunges) std::abort();
    switch (a.what) {
      case kind::send:
      case kind::read:
      case kind::idle_wait: {
        if (next >= wire.size()) {
          if (a.what != kind::idle_wait) return 0;
          a = m.on_idle_timeout();
          break;
        }
        const std::string& w = wire[next++];
        if (a.line) {
          a = m.on_line(w, next < wire.size() && (flags & 4));
          break;
        }
        auto r = parse_imap_response(w, error);
        a = r ? m.on_response(*r) : m.on_io_failure({failure_kind::protocol, {}, error});
        break;
      }
      case kind::start_tls:
        tls_up = flags & 8;
        a = m.on_tls(tls_up ? imap_result{} : imap_result{failure_kind::tls, {}, "fuzz"});
        break;
      case kind::password: a = m.on_password(conf::secret("p\"w"), ""); break;
      case kind::queue:
      case kind::done: {
        if (m.broken()) return 0;
        const std::uint32_t uid = 1 + operation % 3;
        switch (operation++ % 9) {
          case 0: a = m.select("INBOX", flags & 16, 7, 9); break;
          case 1: a = m.list(uid); break;
          case 2: a = m.request_body(uid); break;
          case 3: a = m.body(uid); break;
          case 4: a = m.store(std::to_string(uid), "\\Deleted"); break;
          case 5: a = m.expunge(std::to_string(uid)); break;
          case 6: a = m.move(std::to_string(uid), "Archivio"); break;
          case 7: a = (flags & 32) ? m.idle() : m.sync(); break;
          default: a = m.logout(); break;
        }
        break;
      }
    }
  }
  return 0;
}
