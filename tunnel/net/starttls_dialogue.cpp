#include "tunnel/net/starttls_dialogue.hpp"

#include <algorithm>
#include <cctype>

namespace postern::net {

namespace {

bool iequals_prefix(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  return std::equal(prefix.begin(), prefix.end(), text.begin(), [](char a, char b) {
    return std::toupper(static_cast<unsigned char>(a)) ==
           std::toupper(static_cast<unsigned char>(b));
  });
}

/// SMTP reply line "250-TEXT" / "250 TEXT": code, and whether it is the last line.
bool smtp_reply(std::string_view line, int& code, bool& last, std::string_view& text) {
  if (line.size() < 3 || !std::isdigit(static_cast<unsigned char>(line[0])) ||
      !std::isdigit(static_cast<unsigned char>(line[1])) ||
      !std::isdigit(static_cast<unsigned char>(line[2])))
    return false;
  code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (line.size() == 3) {
    last = true;
    text = {};
    return true;
  }
  if (line[3] != ' ' && line[3] != '-') return false;
  last = line[3] == ' ';
  text = line.substr(4);
  return true;
}

}  // namespace

const char* to_string(starttls_dialogue::action a) {
  switch (a) {
    case starttls_dialogue::action::send: return "send";
    case starttls_dialogue::action::read_more: return "read_more";
    case starttls_dialogue::action::start_tls: return "start_tls";
    case starttls_dialogue::action::fail: return "fail";
  }
  return "?";
}

const char* to_string(starttls_dialogue::failure f) {
  using fl = starttls_dialogue::failure;
  switch (f) {
    case fl::none: return "none";
    case fl::refused: return "refused";
    case fl::not_offered: return "not_offered";
    case fl::starttls_refused: return "starttls_refused";
    case fl::malformed: return "malformed";
    case fl::injected: return "injected";
    case fl::oversized: return "oversized";
  }
  return "?";
}

std::string starttls_dialogue::step::explain() const {
  if (server_line.empty()) return data;
  return data + ": server said \"" + server_line.substr(0, 200) + "\"";
}

starttls_dialogue::starttls_dialogue(conf::app_protocol protocol, std::string hello_name)
    : protocol_(protocol), hello_name_(std::move(hello_name)) {}

starttls_dialogue::step starttls_dialogue::send(state next, std::string command) {
  state_ = next;
  transcript_ += "C: " + command + "\n";
  return {action::send, std::move(command) + "\r\n"};
}

starttls_dialogue::step starttls_dialogue::fail(failure why, std::string reason,
                                                std::string_view line, int code) {
  state_ = state::failed;
  step s{action::fail, std::move(reason), why, std::string(line), code};
  return s;
}

starttls_dialogue::step starttls_dialogue::on_input(std::string_view bytes) {
  if (state_ == state::failed) return {action::fail, "dialogue already failed"};
  buffer_.append(bytes);
  for (;;) {
    auto end = buffer_.find('\n');
    if (end == std::string::npos) {
      if (buffer_.size() > max_line)
        return fail(failure::oversized, "server sent a line longer than 4096 bytes");
      return {action::read_more, {}};
    }
    std::string line = buffer_.substr(0, end);
    buffer_.erase(0, end + 1);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    step next = on_line(line, !buffer_.empty());
    if (next.what != action::read_more) return next;
  }
}

starttls_dialogue::step starttls_dialogue::on_line(std::string_view line, bool more_input) {
  if (state_ == state::failed) return {action::fail, "dialogue already failed"};
  if (state_ == state::done)
    return fail(failure::malformed, "a line after the dialogue ended", line);
  if (line.size() > max_line)
    return fail(failure::oversized, "server sent a line longer than 4096 bytes");
  if (++lines_ > max_lines)
    return fail(failure::oversized, "server sent more than 200 lines before STARTTLS");
  transcript_ += "S: " + std::string(line) + "\n";
  step next = handle_line(line);
  if (next.what == action::start_tls && more_input)
    // Bytes after the STARTTLS reply would be read as if they came over TLS: the
    // classic STARTTLS injection (CVE-2011-0411). Refuse.
    return fail(failure::injected,
                "server sent data after its STARTTLS reply (possible injection, CVE-2011-0411)");
  return next;
}

starttls_dialogue::step starttls_dialogue::handle_line(std::string_view line) {
  switch (protocol_) {
    case conf::app_protocol::smtp:
    case conf::app_protocol::lmtp: return handle_smtp(line);
    case conf::app_protocol::pop3: return handle_pop3(line);
    case conf::app_protocol::imap: return handle_imap(line);
    case conf::app_protocol::none: break;
  }
  return fail(failure::malformed, "no STARTTLS dialogue for this protocol");
}

starttls_dialogue::step starttls_dialogue::handle_smtp(std::string_view line) {
  int code = 0;
  bool last = false;
  std::string_view text;
  if (!smtp_reply(line, code, last, text))
    return fail(failure::malformed, "malformed SMTP reply", line);
  const bool lmtp = protocol_ == conf::app_protocol::lmtp;
  switch (state_) {
    case state::greeting:
      greeting_ += std::string(line) + "\r\n";
      if (!last) return {action::read_more, {}};
      if (code != 220) return fail(failure::refused, "SMTP server refused the session", line, code);
      return send(state::capabilities, (lmtp ? "LHLO " : "EHLO ") + hello_name_);
    case state::capabilities:
      if (code != 250)
        return fail(failure::refused,
                    lmtp ? "LMTP server refused LHLO" : "SMTP server refused EHLO", line, code);
      if (iequals_prefix(text, "STARTTLS") && (text.size() == 8 || text[8] == ' '))
        starttls_offered_ = true;
      if (!last) return {action::read_more, {}};
      if (!starttls_offered_)
        return fail(failure::not_offered,
                    "SMTP server does not offer STARTTLS; refusing to continue in cleartext");
      return send(state::starttls_reply, "STARTTLS");
    case state::starttls_reply:
      if (!last) return {action::read_more, {}};
      if (code != 220)
        return fail(failure::starttls_refused, "SMTP server refused STARTTLS", line, code);
      state_ = state::done;
      return {action::start_tls, {}};
    default: return fail(failure::malformed, "unexpected SMTP reply", line);
  }
}

starttls_dialogue::step starttls_dialogue::handle_pop3(std::string_view line) {
  switch (state_) {
    case state::greeting:
      if (!iequals_prefix(line, "+OK"))
        return fail(iequals_prefix(line, "-ERR") ? failure::refused : failure::malformed,
                    "POP3 server refused the session", line);
      greeting_ = std::string(line) + "\r\n";
      return send(state::starttls_reply, "STLS");
    case state::starttls_reply:
      if (!iequals_prefix(line, "+OK"))
        return fail(iequals_prefix(line, "-ERR") ? failure::starttls_refused : failure::malformed,
                    "POP3 server refused STLS (it may not offer it); refusing to continue in "
                    "cleartext",
                    line);
      state_ = state::done;
      return {action::start_tls, {}};
    default: return fail(failure::malformed, "unexpected POP3 reply", line);
  }
}

starttls_dialogue::step starttls_dialogue::handle_imap(std::string_view line) {
  switch (state_) {
    case state::greeting: {
      if (!iequals_prefix(line, "* OK"))
        return fail(failure::refused, "IMAP server refused the session", line);
      std::string rest(line.substr(4));
      if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
      // Drop "[CAPABILITY ...]": it describes the session before TLS, not after.
      if (iequals_prefix(rest, "[CAPABILITY ")) {
        auto close = rest.find(']');
        rest = close == std::string::npos ? "" : rest.substr(close + 1);
        if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
      }
      greeting_ = "* OK " + rest + "\r\n";
      return send(state::starttls_reply, "pt1 STARTTLS");
    }
    case state::starttls_reply:
      if (line.starts_with("* ")) return {action::read_more, {}};  // untagged: keep reading
      if (iequals_prefix(line, "pt1 OK")) {
        state_ = state::done;
        return {action::start_tls, {}};
      }
      return fail(failure::starttls_refused, "IMAP server refused STARTTLS", line);
    default: return fail(failure::malformed, "unexpected IMAP reply", line);
  }
}

}  // namespace postern::net
