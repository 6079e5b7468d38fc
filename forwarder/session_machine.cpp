#include "session_machine.hpp"

#include <openssl/mem.h>

#include <cctype>

#include "forwarder/smtp/sasl.hpp"

namespace postern::forwarder {

using kind = session_machine::action::kind;

namespace {
void wipe(std::string& s) { OPENSSL_cleanse(s.data(), s.size()); }
}  // namespace

const char* to_string(session_machine::state s) {
  using st = session_machine::state;
  switch (s) {
    case st::command: return "command";
    case st::sasl: return "sasl";
    case st::locked: return "locked";
    case st::verify: return "verify";
    case st::tls: return "tls";
    case st::relay: return "relay";
    case st::data: return "data";
    case st::closed: return "closed";
  }
  return "?";
}

session_machine::session_machine(settings s) : settings_(std::move(s)) {}

session_machine::action session_machine::reply(int code, std::string_view enhanced,
                                               const std::string& text) {
  state_ = state::command;
  action a;
  a.replies.push_back(smtp::make_reply(code, enhanced, text));
  return a;
}

session_machine::action session_machine::error(int code, std::string_view enhanced,
                                               const std::string& text) {
  ++errors_;
  return reply(code, enhanced, text);
}

session_machine::action session_machine::close(std::string reason,
                                               std::optional<smtp::reply> last) {
  state_ = state::closed;
  reason_ = std::move(reason);
  action a;
  a.what = kind::close;
  if (last) a.replies.push_back(std::move(*last));
  return a;
}

session_machine::action session_machine::next(action a) {
  if (errors_ < max_errors || a.what == kind::close) return a;
  action c =
      close("too many errors",
            smtp::make_reply(421, "4.7.0", settings_.hostname + " too many errors, closing"));
  a.replies.insert(a.replies.end(), c.replies.begin(), c.replies.end());
  c.replies = std::move(a.replies);
  c.reset_relay = a.reset_relay;
  return c;
}

void session_machine::forget_transaction() {
  has_sender_ = false;
  recipients_ = 0;
}

session_machine::action session_machine::greet() {
  if (!settings_.peer_allowed && !settings_.auth_available)
    // The accept loop refuses such clients; this is the safety net: never an open relay.
    return close("not allowed", smtp::make_reply(554, "5.7.1",
                                                 settings_.hostname + " does not relay for " +
                                                     settings_.peer_address));
  return reply(220, "", settings_.hostname + " ESMTP postern-forwarder");
}

session_machine::action session_machine::on_line_too_long() {
  return next(
      reply(500, "5.5.2", "line too long (limit " + std::to_string(max_command_line) + ")"));
}

session_machine::action session_machine::on_timeout() {
  return close("timeout",
               smtp::make_reply(421, "4.4.2",
                                settings_.hostname + " timeout waiting for a command, closing"));
}

session_machine::action session_machine::on_closed() {
  return close(state_ == state::sasl ? "client closed during AUTH" : "client closed without QUIT");
}

session_machine::action session_machine::on_write_failed() { return close("write failed"); }

session_machine::action session_machine::on_line(std::string_view line, bool more_input) {
  auto cmd = smtp::parse_command(line);
  if (!cmd) return next(error(500, "5.5.2", "syntax error"));
  const std::string& verb = cmd->verb;
  if (verb == "EHLO" || verb == "HELO") return next(ehlo(*cmd));
  if (verb == "AUTH") return next(auth(cmd->arg));
  if (verb == "STARTTLS") return next(start_tls(more_input));
  if (verb == "MAIL" || verb == "RCPT") return next(envelope(*cmd));
  if (verb == "DATA") return next(data());
  if (verb == "RSET") {
    forget_transaction();
    action a = reply(250, "2.0.0", "reset");
    a.reset_relay = true;
    return a;
  }
  if (verb == "NOOP") return reply(250, "2.0.0", "ok");
  if (verb == "QUIT")
    return close("quit", smtp::make_reply(221, "2.0.0", settings_.hostname + " closing"));
  if (verb == "VRFY")
    return reply(252, "2.1.5", "cannot verify; send the message and the upstream will decide");
  if (verb == "HELP")
    return reply(214, "2.0.0", "commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT STARTTLS");
  return next(error(502, "5.5.1", verb + " not implemented"));
}

smtp::reply session_machine::ehlo_reply() const {
  std::string text = settings_.hostname + " greets " + helo_;
  text += "\nPIPELINING\nSIZE " + std::to_string(settings_.max_message_size);
  text += "\n8BITMIME\nSMTPUTF8\nENHANCEDSTATUSCODES";
  if (settings_.tls_available && !tls_) text += "\nSTARTTLS";
  if (auth_offered()) text += "\nAUTH PLAIN LOGIN";
  return smtp::make_reply(250, "", text);
}

session_machine::action session_machine::ehlo(const smtp::command& cmd) {
  forget_transaction();
  helo_ = cmd.arg;
  action a;
  if (helo_.empty())
    a = error(501, "5.5.4", cmd.verb + " needs a domain or address literal");
  else if (cmd.verb == "HELO")
    a = reply(250, "", settings_.hostname);
  else
    a.replies.push_back(ehlo_reply());
  state_ = state::command;
  a.reset_relay = true;
  return a;
}

// --- AUTH (RFC 4954): PLAIN and LOGIN, only where offered --------------------------------------

session_machine::action session_machine::auth(const std::string& arg) {
  if (!settings_.auth_available) return error(502, "5.5.1", "AUTH not available");
  if (!auth_offered()) return error(538, "5.7.11", "encryption required: STARTTLS first");
  if (user_) return error(503, "5.5.1", "already authenticated");
  if (has_sender_) return error(503, "5.5.1", "AUTH not allowed during a transaction");
  // A locked address gets nothing more, whatever it asks for.
  auth_arg_ = arg;
  state_ = state::locked;
  action a;
  a.what = kind::check_lock;
  return a;
}

session_machine::action session_machine::on_lock(long locked_seconds) {
  if (locked_seconds > 0)
    return close(
        "AUTH locked for this address",
        smtp::make_reply(421, "4.7.0",
                         settings_.hostname + " too many failed logins from " + settings_.peer_ip +
                             "; try again in " + std::to_string(locked_seconds) + "s"));
  std::string arg;
  arg.swap(auth_arg_);
  const auto space = arg.find(' ');
  mechanism_ = arg.substr(0, space);
  for (auto& c : mechanism_) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (mechanism_ != "PLAIN" && mechanism_ != "LOGIN")
    return error(504, "5.5.4", "unsupported mechanism; use PLAIN or LOGIN");
  sasl_lines_.clear();
  // Clients may send the first response with the command ("AUTH LOGIN dXNlcg==").
  if (space != std::string::npos && space + 1 < arg.size())
    sasl_lines_.emplace_back(arg.substr(space + 1));
  sasl_needed_ = mechanism_ == "PLAIN" ? 1 : 2;
  return auth_exchange();
}

session_machine::action session_machine::auth_exchange() {
  if (sasl_lines_.size() >= sasl_needed_) return verify();
  if (mechanism_ == "PLAIN") return sasl("");
  return sasl(sasl_lines_.empty() ? "VXNlcm5hbWU6" : "UGFzc3dvcmQ6");  // "Username:", "Password:"
}

session_machine::action session_machine::sasl(const std::string& challenge) {
  action a = reply(334, "", challenge);
  state_ = state::sasl;
  a.what = kind::read_sasl;
  return a;
}

session_machine::action session_machine::on_sasl_line(const std::optional<std::string>& line) {
  if (!line) {
    sasl_lines_.clear();
    return close("client closed during AUTH");
  }
  if (*line == "*") {  // the client gave up (RFC 4954 §4)
    sasl_lines_.clear();
    return reply(501, "5.7.0", "authentication cancelled");
  }
  sasl_lines_.emplace_back(*line);
  return auth_exchange();
}

session_machine::action session_machine::verify() {
  action a;
  a.what = kind::verify;
  state_ = state::verify;
  if (mechanism_ == "PLAIN") {
    auto decoded = smtp::base64_decode(sasl_lines_[0].reveal());
    if (decoded) a.credentials = parse_plain_response(*decoded);
    if (decoded) wipe(*decoded);
  } else {
    auto u = smtp::base64_decode(sasl_lines_[0].reveal());
    auto p = smtp::base64_decode(sasl_lines_[1].reveal());
    if (u && p) a.credentials = plain_credentials{*u, *p};
    if (p) wipe(*p);
  }
  sasl_lines_.clear();
  pending_user_ = a.credentials ? a.credentials->user : "";
  return a;
}

session_machine::action session_machine::on_verified(bool ok, bool locked_now) {
  if (ok) {
    user_ = pending_user_;
    return reply(235, "2.7.0", "authenticated");
  }
  if (++auth_failures_ >= max_auth_failures || locked_now)
    return close(
        "too many failed logins",
        smtp::make_reply(421, "4.7.0", settings_.hostname + " too many failed logins, closing"));
  return reply(535, "5.7.8", "authentication failed");
}

// --- STARTTLS (RFC 3207) ------------------------------------------------------------------------

session_machine::action session_machine::start_tls(bool more_input) {
  if (tls_) return error(503, "5.5.1", "TLS already active");
  if (!settings_.tls_available) return error(502, "5.5.1", "STARTTLS not available");
  if (more_input)
    // Commands pipelined after STARTTLS would be read as if sent over TLS (CVE-2011-0411).
    return close(
        "data after STARTTLS",
        smtp::make_reply(554, "5.5.1", "no commands may follow STARTTLS before the handshake"));
  action a = reply(220, "2.0.0", "ready to start TLS");
  a.what = kind::start_tls;
  state_ = state::tls;
  return a;
}

session_machine::action session_machine::on_tls(bool ok, const std::string& error) {
  if (!ok) return close("TLS handshake failed: " + error);
  tls_ = true;
  helo_.clear();  // RFC 3207 §4.2: forget everything learnt before TLS
  user_.reset();
  forget_transaction();
  state_ = state::command;
  action a;
  a.reset_relay = true;
  return a;
}

// --- the transaction
// ------------------------------------------------------------------------------

session_machine::action session_machine::envelope(const smtp::command& cmd) {
  const bool mail = cmd.verb == "MAIL";
  if (helo_.empty()) return error(503, "5.5.1", "say EHLO first");
  if (!mail && !has_sender_) return error(503, "5.5.1", "MAIL first");
  if (mail && !settings_.peer_allowed && !user_)
    return error(530, "5.7.0",
                 auth_offered() ? "authentication required"
                                : "authentication required: STARTTLS, then AUTH");
  std::string why;
  auto path = smtp::parse_mail_path(cmd.arg, mail ? "FROM" : "TO", &why);
  if (!path) return error(501, "5.5.4", why);
  state_ = state::relay;
  action a;
  a.what = mail ? kind::relay_mail : kind::relay_rcpt;
  a.path = std::move(path);
  return a;
}

session_machine::action session_machine::on_relayed(const smtp::reply& answer, bool has_sender,
                                                    std::size_t recipients) {
  has_sender_ = has_sender;
  recipients_ = recipients;
  state_ = state::command;
  action a;
  a.replies.push_back(answer);
  return next(std::move(a));
}

session_machine::action session_machine::data() {
  if (!has_sender_) return error(503, "5.5.1", "MAIL first");
  if (recipients_ == 0) return error(554, "5.5.1", "no valid recipients");
  action a = reply(354, "", "end data with <CR><LF>.<CR><LF>");
  a.what = kind::relay_data;
  state_ = state::data;
  return a;
}

session_machine::action session_machine::on_data_done(const std::optional<smtp::reply>& answer,
                                                      const std::string& error) {
  forget_transaction();
  if (!answer) {
    action a = close(error);
    a.reset_relay = true;
    return a;
  }
  ++(answer->positive() ? relayed_ : refused_);
  state_ = state::command;
  action a;
  a.replies.push_back(*answer);
  a.reset_relay = true;
  return next(std::move(a));
}

}  // namespace postern::forwarder
