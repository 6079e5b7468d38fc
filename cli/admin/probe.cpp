#include "cli/admin/probe.hpp"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <ostream>

#include "cli/exit_codes.hpp"
#include "cli/json_writer.hpp"
#include "fetch/pop3_protocol.hpp"
#include "forwarder/smtp/dot_codec.hpp"
#include "forwarder/smtp/reply.hpp"
#include "forwarder/smtp/sasl.hpp"
#include "tunnel/net/line_channel.hpp"
#include "tunnel/net/starttls_dialogue.hpp"
#include "tunnel/net/tls_context.hpp"

namespace postern::admin {

using asio::awaitable;
using clock = std::chrono::steady_clock;

const char* to_string(probe_outcome o) {
  switch (o) {
    case probe_outcome::ok: return "ok";
    case probe_outcome::unreachable: return "unreachable";
    case probe_outcome::tls_failed: return "tls_failed";
    case probe_outcome::refused: return "refused";
    case probe_outcome::login_refused: return "login_refused";
    case probe_outcome::no_password: return "no_password";
  }
  return "?";
}

int exit_status(probe_outcome o) {
  switch (o) {
    case probe_outcome::ok: return exit_code::ok;
    case probe_outcome::unreachable: return exit_code::unavailable;
    case probe_outcome::tls_failed: return exit_code::protocol;
    case probe_outcome::refused: return exit_code::unavailable;
    case probe_outcome::login_refused: return exit_code::noperm;
    case probe_outcome::no_password: return exit_code::config;
  }
  return exit_code::software;
}

namespace {

constexpr std::size_t max_line = 4096;
constexpr std::size_t max_reply_lines = 200;

std::chrono::microseconds since(clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - t);
}

/// Clears a pointer when the scope that owns its target ends.
class forget_on_exit {
 public:
  explicit forget_on_exit(const conf::secret*& p) : p_(p) {}
  ~forget_on_exit() { p_ = nullptr; }
  forget_on_exit(const forget_on_exit&) = delete;
  forget_on_exit& operator=(const forget_on_exit&) = delete;

 private:
  const conf::secret*& p_;
};

/// One probe's conversation with the server, over a connected channel.
class conversation {
 public:
  conversation(net::line_channel& channel, const probe_request& request, probe_result& result)
      : ch_(channel), req_(request), r_(result) {}

  /// The plaintext preamble through the one STARTTLS machine; false (result says why) when
  /// it failed. The SMTP EHLO reply before TLS is kept as the capabilities before.
  awaitable<bool> starttls() {
    net::starttls_dialogue dialogue(req_.endpoint.protocol, req_.hello_name);
    const auto deadline = clock::now() + req_.timeout;  // the whole preamble, not each line
    int sent = 0;
    std::optional<std::string> greeting;  // POP3's, read before CAPA and fed to the dialogue
    if (req_.endpoint.protocol == conf::app_protocol::pop3) {
      // A probe asks CAPA in cleartext to show it (the programs do not: nothing said there
      // survives STLS); no credential goes before TLS either way.
      std::string line;
      net::io_status st = co_await ch_.read_line_until(line, max_line, deadline);
      if (st != net::io_status::ok) co_return lost(st, "before STARTTLS");
      trace("S", line);
      if (line.starts_with("+OK")) {
        send("CAPA\r\n");
        const bool listed = co_await reply(false, true, r_.capabilities_before, "before STARTTLS");
        if (!listed && !r_.failure.empty()) co_return false;
      }
      greeting = std::move(line);
    }
    for (;;) {
      std::string line;
      if (greeting) {
        line = std::move(*greeting);
        greeting.reset();
      } else {
        net::io_status st = co_await ch_.read_line_until(line, max_line, deadline);
        if (st != net::io_status::ok) co_return lost(st, "before STARTTLS");
        trace("S", line);
      }
      if (sent == 1 && req_.endpoint.protocol == conf::app_protocol::smtp)
        ehlo_lines_.push_back(line.size() > 4 ? line.substr(4) : line);
      net::starttls_dialogue::step s = dialogue.on_line(line, !ch_.buffered().empty());
      if (s.what == net::starttls_dialogue::action::start_tls) {
        if (req_.endpoint.protocol == conf::app_protocol::smtp)
          r_.capabilities_before = capabilities(ehlo_lines_);
        co_return true;
      }
      if (s.what == net::starttls_dialogue::action::fail) {
        r_.outcome = probe_outcome::refused;
        r_.failure = s.explain();
        co_return false;
      }
      if (s.what == net::starttls_dialogue::action::send) {
        ++sent;
        send(s.data);
        net::io_status f = co_await ch_.flush(req_.timeout);
        if (f != net::io_status::ok) co_return lost(f, "before STARTTLS");
      }
    }
  }

  /// Over TLS: the greeting (implicit TLS), the capabilities, QUIT. False when refused.
  awaitable<bool> after_tls(bool greeted) {
    const bool smtp = req_.endpoint.protocol == conf::app_protocol::smtp;
    std::vector<std::string> lines;
    if (!greeted) {
      bool ok = co_await reply(smtp, false, lines);
      if (!ok) co_return refused("greeting", lines);
    }
    lines.clear();
    send(smtp ? "EHLO " + req_.hello_name + "\r\n" : std::string("CAPA\r\n"));
    bool ok = co_await reply(smtp, !smtp, lines);
    if (!ok) co_return refused(smtp ? "EHLO" : "CAPA", lines);
    if (smtp) ehlo_ = last_reply_;
    r_.capabilities_after = smtp ? capabilities(lines) : lines;
    if (req_.auth) co_await log_in(smtp);
    send("QUIT\r\n");
    co_await ch_.flush(req_.timeout);
    co_return true;
  }

 private:
  /// One reply, read with the protocol's own parsers: an SMTP reply (smtp::reply_parser), a
  /// POP3 status line, or with `listing` a POP3 status and the listing after it
  /// (smtp::unstuff_line). False on a refusal (its text kept in `lines`) or a lost connection
  /// (the result says which).
  awaitable<bool> reply(bool smtp, bool listing, std::vector<std::string>& lines,
                        const char* when = "over TLS") {
    if (ch_.queued() > 0) {
      net::io_status f = co_await ch_.flush(req_.timeout);
      if (f != net::io_status::ok) co_return lost(f, when);
    }
    const auto deadline = clock::now() + req_.timeout;
    postern::smtp::reply_parser parser;
    for (std::size_t n = 0;; ++n) {
      std::string line;
      net::io_status st = co_await ch_.read_line_until(line, max_line, deadline);
      if (st != net::io_status::ok) co_return lost(st, when);
      last_line_ = line;
      trace("S", line);
      if (smtp) {
        const auto fed = parser.feed(line);
        if (fed == postern::smtp::reply_parser::status::more) continue;
        if (fed == postern::smtp::reply_parser::status::malformed)
          co_return malformed(parser.error());
        last_reply_ = parser.take();
        lines.insert(lines.end(), last_reply_.lines.begin(), last_reply_.lines.end());
        co_return last_reply_.code / 100 == 2;
      }
      if (n == 0) {
        const auto status = fetch::parse_status(line);
        if (!status || !status->ok) {
          lines.push_back(line);
          co_return false;
        }
        if (!listing) co_return true;
        continue;
      }
      const auto text = postern::smtp::unstuff_line(line);
      if (!text) co_return true;
      if (n > max_reply_lines)
        co_return malformed("a listing of more than " + std::to_string(max_reply_lines) + " lines");
      lines.emplace_back(*text);
    }
  }

  bool malformed(const std::string& what) {
    r_.outcome = probe_outcome::refused;
    r_.failure = "the server's reply: " + what;
    return false;
  }

  bool lost(net::io_status st, const char* when) {
    if (r_.failure.empty()) {
      r_.outcome = r_.tls_mode.empty() || !r_.tls_version.empty() ? probe_outcome::refused
                                                                  : probe_outcome::tls_failed;
      r_.failure = std::string("connection ") + net::to_string(st) + " " + when +
                   (ch_.error().empty() ? "" : ": " + ch_.error());
    }
    return false;
  }

  bool refused(const char* what, const std::vector<std::string>& lines) {
    if (r_.failure.empty()) {
      r_.outcome = probe_outcome::refused;
      r_.failure = std::string("the server refused ") + what +
                   (lines.empty() ? "" : ": server said \"" + lines.back() + "\"");
    }
    return false;
  }

  /// --auth: each mechanism offered that postern speaks, in turn, until one logs in.
  awaitable<void> log_in(bool smtp) {
    std::string error = "the target is not a mailbox";
    std::optional<conf::secret> password;
    if (req_.password) password = co_await req_.password(error);
    if (!password) {
      r_.outcome = probe_outcome::no_password;
      r_.failure = "no password to log in with: " + error;
      co_return;
    }
    password_ = &*password;
    const forget_on_exit forget(password_);  // the password dies with this frame
    const std::vector<std::string> mechanisms = offered(smtp);
    if (mechanisms.empty()) {
      r_.outcome = probe_outcome::login_refused;
      r_.failure =
          "the server offers no login postern speaks (SMTP AUTH PLAIN or LOGIN, POP3 "
          "SASL PLAIN or USER)";
      co_return;
    }
    std::string logged_in_with;
    for (const std::string& mechanism : mechanisms) {
      login_attempt a;
      a.mechanism = mechanism;
      if (!logged_in_with.empty()) {
        a.tried = false;
        a.reply = "not tried: logged in with " + logged_in_with;
      } else {
        a.ok = co_await exchange(smtp, mechanism, *password);
        a.reply = net::redact(last_line_, password->reveal());
        a.enhanced = smtp ? enhanced_code(a.reply) : "";
      }
      if (a.ok) logged_in_with = mechanism;
      r_.logins.push_back(a);
      if (!r_.failure.empty()) co_return;  // the connection was lost
    }
    if (!logged_in_with.empty() && !smtp) {
      // What a login shows of the mailbox, and nothing more: STAT (no RETR, no DELE).
      std::vector<std::string> lines;
      send("STAT\r\n");
      co_await reply(false, false, lines);
      r_.mailbox_status = last_line_;
    }
    if (logged_in_with.empty()) {
      r_.outcome = probe_outcome::login_refused;
      r_.failure = "every login was refused; last reply: " + r_.logins.back().reply;
    }
  }

  /// The mechanisms offered over TLS that postern speaks, in the order it tries them.
  std::vector<std::string> offered(bool smtp) const {
    std::vector<std::string> out;
    const std::vector<std::string> sasl = smtp ? postern::smtp::parse_ehlo(ehlo_).auth
                                               : fetch::parse_capa(r_.capabilities_after).sasl;
    for (const char* m : {"PLAIN", "LOGIN"})
      if ((smtp || std::string_view(m) == "PLAIN") &&
          std::find(sasl.begin(), sasl.end(), m) != sasl.end())
        out.emplace_back(m);
    if (!smtp && fetch::parse_capa(r_.capabilities_after).user) out.emplace_back("USER");
    return out;
  }

  /// One login: true when the server accepted it; last_line_ holds its final reply.
  awaitable<bool> exchange(bool smtp, const std::string& mechanism, const conf::secret& password) {
    std::vector<std::string> lines;
    if (mechanism == "PLAIN") {
      conf::secret response = postern::smtp::plain_response(req_.login, password);
      send("AUTH PLAIN " + response.reveal() + "\r\n", "AUTH PLAIN <redacted>");
      co_return co_await reply(smtp, false, lines);
    }
    if (mechanism == "LOGIN") {
      send("AUTH LOGIN\r\n");
      co_await reply(smtp, false, lines);
      if (last_reply_.code != 334) co_return false;
      lines.clear();
      send(postern::smtp::base64_encode(req_.login) + "\r\n", "<login, base64>");
      co_await reply(smtp, false, lines);
      if (last_reply_.code != 334) co_return false;
      lines.clear();
      conf::secret encoded(postern::smtp::base64_encode(password.reveal()) + "\r\n");
      send(encoded.reveal(), "<redacted>");
      co_return co_await reply(smtp, false, lines);
    }
    send("USER " + req_.login + "\r\n");  // POP3 USER/PASS
    const bool user_ok = co_await reply(false, false, lines);
    if (!user_ok) co_return false;
    lines.clear();
    conf::secret command("PASS " + password.reveal() + "\r\n");
    send(command.reveal(), "PASS <redacted>");
    co_return co_await reply(false, false, lines);
  }

  /// "5.7.8" from "535 5.7.8 Authentication credentials invalid", else "".
  static std::string enhanced_code(const std::string& line) {
    std::size_t at = line.find(' ');
    if (at == std::string::npos) return {};
    std::size_t end = line.find(' ', at + 1);
    std::string code = line.substr(at + 1, end == std::string::npos ? end : end - at - 1);
    const bool shaped = code.size() >= 5 && (code[0] == '2' || code[0] == '4' || code[0] == '5') &&
                        code[1] == '.' && code.find('.', 2) != std::string::npos &&
                        code.find_first_not_of("0123456789.") == std::string::npos;
    return shaped ? code : std::string();
  }

  /// Queues a command; --trace shows it as `shown` when that is given (credentials).
  void send(const std::string& command, std::string_view shown = {}) {
    ch_.queue(command);
    if (req_.trace)
      trace("C", shown.empty() ? std::string_view(command).substr(0, command.size() - 2) : shown);
  }

  /// --trace: one line of the dialogue on standard error; a password echoed is redacted.
  void trace(const char* who, std::string_view line) const {
    if (!req_.trace) return;
    std::string text(line);
    if (password_) text = net::redact(text, password_->reveal());
    std::cerr << "  " << who << ": " << text << "\n";
  }

  /// An EHLO reply's extensions: its lines after the first, which names the server.
  static std::vector<std::string> capabilities(const std::vector<std::string>& ehlo) {
    return ehlo.size() > 1 ? std::vector<std::string>(ehlo.begin() + 1, ehlo.end())
                           : std::vector<std::string>();
  }

  net::line_channel& ch_;
  const probe_request& req_;
  probe_result& r_;
  std::vector<std::string> ehlo_lines_;
  std::string last_line_;                   ///< the last line read
  postern::smtp::reply last_reply_;         ///< the last SMTP reply read
  postern::smtp::reply ehlo_;               ///< the EHLO reply over TLS
  const conf::secret* password_ = nullptr;  ///< while logging in, for redaction
};

std::string trust_store_of(const conf::tls_settings& tls) {
  if (tls.verify == conf::verify_mode::none) return "none (verify = \"none\")";
  if (!tls.ca_file.empty()) return tls.ca_file;
  if (!tls.ca_dir.empty()) return tls.ca_dir;
  return std::string("system (") + net::system_ca_file + ")";
}

}  // namespace

awaitable<probe_result> probe(asio::any_io_executor ex, probe_request req) {
  probe_result r;
  r.label = req.label;
  r.url = req.endpoint.to_string();
  r.hint = conf::port_scheme_advice(req.endpoint);
  r.tls_mode = req.endpoint.tls == conf::tls_mode::starttls ? "starttls" : "implicit";
  r.trust_store = trust_store_of(req.tls);
  r.checked_name = req.tls.verify_host.empty() ? req.endpoint.addr.host : req.tls.verify_host;
  r.pins = req.tls.pin_sha256;
  std::string error;
  auto tls = net::tls_context::create(req.tls, conf::tunnel_mode::client, error);
  if (!tls) {
    r.outcome = probe_outcome::tls_failed;
    r.failure = error;
    co_return r;
  }
  net::connect_trail trail;
  net::connect_result c =
      co_await net::async_connect_to(ex, req.endpoint.addr, req.timeout, &trail);
  r.resolve_took = trail.resolve_took;
  r.attempts = std::move(trail.attempts);
  if (c.fd < 0) {
    // No address to try is the name's fault; addresses that all failed are the network's.
    r.outcome = probe_outcome::unreachable;
    r.failure = (r.attempts.empty() ? "DNS: " : "TCP: ") + c.error;
    co_return r;
  }
  net::line_channel channel(ex, c.fd);
  conversation talk(channel, req, r);
  const bool starttls = req.endpoint.tls == conf::tls_mode::starttls;
  if (starttls) {
    const bool ready = co_await talk.starttls();
    if (!ready) co_return r;
  }
  const auto started = clock::now();
  net::line_channel::tls_outcome t =
      co_await channel.start_client_tls(*tls, req.endpoint.addr, req.timeout);
  r.tls_took = since(started);
  r.chain = net::peer_chain(channel.tls_session());
  r.tls_version = channel.tls_version();
  r.tls_cipher = channel.tls_cipher();
  r.alpn = net::alpn_selected(channel.tls_session());
  r.verification = t.verified ? t.verdict.verify : "failed";
  if (!t.verified) {
    r.outcome = probe_outcome::tls_failed;
    r.failure = t.error;
    co_return r;
  }
  co_await talk.after_tls(starttls);
  co_return r;
}

bool probe_requests(const std::string& target, const conf::mailbox_registry* registry,
                    const std::string& only, std::vector<probe_request>& out, std::string& error) {
  if (target.find("://") != std::string::npos) {
    auto e = conf::parse_endpoint(target, &error);
    if (!e) return false;
    if (e->protocol != conf::app_protocol::smtp && e->protocol != conf::app_protocol::pop3) {
      error = target +
              ": postern probe speaks smtps://, smtp+starttls://, pop3s:// and "
              "pop3+starttls://";
      return false;
    }
    if (e->tls == conf::tls_mode::none) {
      error = target +
              ": a probe is of a TLS endpoint (smtps://, smtp+starttls://, pop3s://, "
              "pop3+starttls://)";
      return false;
    }
    out.push_back({target, *e, {}, {}});
    return true;
  }
  const conf::mailbox* m = registry ? registry->find(target) : nullptr;
  if (!m) {
    error = target + (registry ? ": no such mailbox in " + registry->file
                               : ": not a URL, and no registry to look the mailbox up in");
    return false;
  }
  for (const auto& [name, endpoint] : {std::pair{"smtp", m->smtp}, std::pair{"pop3", m->pop3}})
    if (endpoint && (only.empty() || only == name)) {
      probe_request request;
      request.label = m->address;
      request.endpoint = *endpoint;
      request.tls = m->tls;
      request.login = m->login.empty() ? m->address : m->login;
      request.password = net::password_of(*m, std::chrono::seconds(30));
      out.push_back(std::move(request));
    }
  if (out.empty()) {
    error = m->address + ": no " + (only.empty() ? std::string("smtp or pop3") : only) +
            " endpoint in " + registry->file;
    return false;
  }
  return true;
}

namespace {

std::string ms(std::chrono::microseconds us) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f ms", static_cast<double>(us.count()) / 1000.0);
  return text;
}

}  // namespace

void print_probe_text(const probe_result& r, std::ostream& out) {
  out << "probe " << r.url << (r.label != r.url ? " (" + r.label + ")" : "") << "\n";
  if (!r.hint.empty()) out << "  hint: " << r.hint << "\n";
  out << "  resolve: " << ms(r.resolve_took) << "\n";
  for (const auto& a : r.attempts)
    out << "  connect " << a.address << ": " << ms(a.took)
        << (a.error.empty() ? ", connected" : ", " + a.error) << "\n";
  if (!r.capabilities_before.empty()) {
    out << "  before TLS:";
    for (const auto& c : r.capabilities_before) out << " " << c << ";";
    out << "\n";
  }
  if (!r.tls_version.empty() || !r.chain.empty()) {
    out << "  TLS (" << r.tls_mode << "): " << ms(r.tls_took) << ", "
        << (r.tls_version.empty() ? "no session" : r.tls_version + " " + r.tls_cipher)
        << (r.alpn.empty() ? "" : ", ALPN " + r.alpn) << "\n";
    for (std::size_t i = 0; i < r.chain.size(); ++i) {
      const auto& c = r.chain[i];
      out << "  certificate " << i << ": " << c.subject << "\n      issuer " << c.issuer
          << "\n      valid " << c.not_before << " to " << c.not_after
          << (c.seconds_left <= 0 ? " (EXPIRED)" : "") << "\n      SPKI SHA-256 " << c.spki_sha256
          << "\n";
    }
    out << "  verification: " << r.verification << " (trust store " << r.trust_store << ", name "
        << r.checked_name << (r.pins.empty() ? "" : ", pins " + std::to_string(r.pins.size()))
        << ")\n";
  }
  if (!r.capabilities_after.empty()) {
    out << "  over TLS:";
    for (const auto& c : r.capabilities_after) out << " " << c << ";";
    out << "\n";
  }
  for (const auto& l : r.logins)
    out << "  login " << l.mechanism << ": "
        << (l.tried ? (l.ok ? "accepted, " : "refused, ") + std::string("server said \"") +
                          l.reply + "\""
                    : l.reply)
        << "\n";
  if (!r.mailbox_status.empty()) out << "  STAT: " << r.mailbox_status << "\n";
  out << "verdict: " << to_string(r.outcome) << (r.failure.empty() ? "" : ": " + r.failure) << "\n";
}

void print_probe_json(const std::vector<probe_result>& results, std::ostream& out) {
  cli::json_writer json;
  bool ok = true;
  for (const auto& r : results) ok = ok && r.outcome == probe_outcome::ok;
  json.begin_object().boolean("ok", ok).begin_array("probes");
  for (const auto& r : results) {
    json.begin_object().string("target", r.label).string("url", r.url).string("hint", r.hint);
    json.number("resolve_us", r.resolve_took.count()).begin_array("connect");
    for (const auto& a : r.attempts)
      json.begin_object()
          .string("address", a.address)
          .number("us", a.took.count())
          .string("error", a.error)
          .end_object();
    json.end_array().string("tls_mode", r.tls_mode).begin_array("capabilities_before");
    for (const auto& c : r.capabilities_before) json.string("", c);
    json.end_array().number("tls_us", r.tls_took.count()).string("tls_version", r.tls_version);
    json.string("cipher", r.tls_cipher).string("alpn", r.alpn).begin_array("chain");
    for (const auto& c : r.chain)
      json.begin_object()
          .string("subject", c.subject)
          .string("issuer", c.issuer)
          .string("not_before", c.not_before)
          .string("not_after", c.not_after)
          .string("spki_sha256", c.spki_sha256)
          .end_object();
    json.end_array().string("trust_store", r.trust_store).string("name", r.checked_name);
    json.begin_array("pins");
    for (const auto& p : r.pins) json.string("", p);
    json.end_array().string("verification", r.verification).begin_array("capabilities_after");
    for (const auto& c : r.capabilities_after) json.string("", c);
    json.end_array().begin_array("logins");
    for (const auto& l : r.logins)
      json.begin_object()
          .string("mechanism", l.mechanism)
          .boolean("tried", l.tried)
          .boolean("ok", l.ok)
          .string("reply", l.reply)
          .string("enhanced", l.enhanced)
          .end_object();
    json.end_array().string("stat", r.mailbox_status);
    json.string("outcome", to_string(r.outcome)).string("failure", r.failure);
    json.end_object();
  }
  json.end_array().end_object();
  out << json.text() << "\n";
}

}  // namespace postern::admin
