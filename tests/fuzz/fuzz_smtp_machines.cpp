// The SMTP machines driven by hostile peers. The first byte chooses the settings and the
// answers the driver gives (a password right or wrong, a relay that accepts or refuses); the
// rest is lines. Beyond "no crash", the rules that keep mail and passwords safe:
//   server session: a client outside `allow` gets no RCPT or DATA relayed before it has
//   logged in; every reply has a code from 200 to 599 and no line break inside a line;
//   client: with STARTTLS required, neither AUTH nor MAIL leaves before TLS is up; every
//   command sent ends with CRLF and holds no other line break.
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "forwarder/session_machine.hpp"
#include "forwarder/smtp/client_machine.hpp"

using namespace postern;

namespace {

std::vector<std::string> split_lines(std::string_view input) {
  std::vector<std::string> lines;
  std::size_t pos = 0;
  while (pos < input.size()) {
    auto nl = input.find('\n', pos);
    std::string line(input.substr(pos, nl == std::string_view::npos ? nl : nl - pos));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    pos = nl == std::string_view::npos ? input.size() : nl + 1;
  }
  return lines;
}

void check_replies(const forwarder::session_machine::action& a) {
  for (const auto& r : a.replies) {
    if (r.code < 200 || r.code > 599) std::abort();
    for (const auto& l : r.lines)
      if (l.find_first_of("\r\n") != std::string::npos) std::abort();
  }
}

void server(std::uint8_t flags, const std::vector<std::string>& lines) {
  using kind = forwarder::session_machine::action::kind;
  forwarder::session_machine::settings s;
  s.hostname = "fw.fuzz";
  s.max_message_size = 1000;
  s.peer_allowed = flags & 1;
  s.peer_local = flags & 2;
  s.tls_available = flags & 4;
  s.auth_available = true;
  s.peer_address = "192.0.2.1:1000";
  s.peer_ip = "192.0.2.1";
  forwarder::session_machine m(s);
  std::size_t next = 0;
  bool has_sender = false;
  std::size_t recipients = 0;
  auto a = m.greet();
  for (std::size_t steps = 0; a.what != kind::close; ++steps) {
    if (steps > 4 * lines.size() + 100) std::abort();  // a machine that reads nothing, forever
    check_replies(a);
    switch (a.what) {
      case kind::read_command:
        if (next == lines.size()) {
          a = m.on_closed();
          break;
        }
        a = m.on_line(lines[next], next + 1 < lines.size() && (flags & 8));
        ++next;
        break;
      case kind::read_sasl:
        a = m.on_sasl_line(next < lines.size() ? std::optional<std::string>(lines[next++])
                                               : std::nullopt);
        break;
      case kind::check_lock: a = m.on_lock(0); break;
      case kind::verify: a = m.on_verified(flags & 16, false); break;
      case kind::start_tls: a = m.on_tls(flags & 32, "fuzz"); break;
      case kind::relay_mail:
      case kind::relay_rcpt:
      case kind::relay_data: {
        if (a.what != kind::relay_mail && !s.peer_allowed && !m.user()) std::abort();
        if (a.what == kind::relay_data) {
          a = m.on_data_done(smtp::make_reply(250, "2.0.0", "ok"), "");
          has_sender = false;
          recipients = 0;
          break;
        }
        const bool accept = flags & 64;
        if (accept && a.what == kind::relay_mail) has_sender = true;
        if (accept && a.what == kind::relay_rcpt) ++recipients;
        a = m.on_relayed(
            accept ? smtp::make_reply(250, "2.1.0", "ok") : smtp::make_reply(550, "5.7.1", "no"),
            has_sender, recipients);
        break;
      }
      case kind::close: break;
    }
  }
  check_replies(a);
}

void check_command(const smtp::client_machine::action& a) {
  const std::string& b = a.bytes;
  if (b.size() < 2 || !b.ends_with("\r\n")) std::abort();
  // Pipelined commands are several lines; none holds a bare CR or LF.
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (b[i] == '\n' && (i == 0 || b[i - 1] != '\r')) std::abort();
    if (b[i] == '\r' && (i + 1 == b.size() || b[i + 1] != '\n')) std::abort();
  }
}

void client(std::uint8_t flags, const std::vector<std::string>& lines) {
  using kind = smtp::client_machine::action::kind;
  smtp::client_machine::settings s;
  s.helo_name = "fw.fuzz";
  s.lmtp = flags & 1;
  s.starttls = flags & 2;
  s.implicit_tls = !s.starttls && (flags & 4);
  s.login = flags & 8 ? "user" : "";
  s.server = "mx.fuzz:25";
  smtp::client_machine m(s);
  bool tls_up = s.implicit_tls;
  std::size_t next = 0;
  int operation = 0;
  auto a = m.open();
  for (std::size_t steps = 0; steps < 4 * lines.size() + 100; ++steps) {
    if (a.what == kind::send) {
      check_command(a);
      if (s.starttls && !tls_up && (a.bytes.starts_with("AUTH") || a.bytes.starts_with("MAIL")))
        std::abort();  // credentials or mail in cleartext
    }
    switch (a.what) {
      case kind::send:
      case kind::read: {
        if (next == lines.size()) return;
        if (a.line) {
          a = m.on_line(lines[next], next + 1 < lines.size() && (flags & 16));
          ++next;
          break;
        }
        smtp::reply_parser parser;
        auto st = smtp::reply_parser::status::more;
        while (next < lines.size() && st == smtp::reply_parser::status::more)
          st = parser.feed(lines[next++]);
        if (st != smtp::reply_parser::status::done) return;
        a = m.on_reply(parser.take());
        break;
      }
      case kind::start_tls:
        tls_up = flags & 32;
        a = m.on_tls(tls_up ? smtp::client_result{}
                            : smtp::client_result{smtp::failure_kind::tls, {}, "fuzz"});
        break;
      case kind::password: a = m.on_password(conf::secret("pw"), ""); break;
      case kind::done:
        if (m.broken()) return;
        switch (operation++ % 6) {
          case 0: a = m.envelope("<a@x>", "<b@y>"); break;
          case 1: a = m.end_data(); break;
          case 2: a = m.mail("<a@x>"); break;
          case 3: a = m.rcpt("<b@y>"); break;
          case 4: a = m.data(); break;
          default: a = m.reset(); break;
        }
        break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const auto lines = split_lines({reinterpret_cast<const char*>(data + 1), size - 1});
  server(data[0], lines);
  client(data[0], lines);
  return 0;
}
