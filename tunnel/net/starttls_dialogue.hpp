#pragma once
/// The plaintext preamble before STARTTLS (SMTP RFC 3207, LMTP RFC 2033, POP3 STLS RFC 2595,
/// IMAP RFC 3501), as a state machine that does no I/O: feed it what the server sent, it
/// answers with what to send next, when to start TLS, or why it failed. The one home of these
/// rules: the tunnel feeds it raw bytes (on_input), the SMTP and POP3 clients feed it the
/// lines they read (on_line), and the IMAP client will do the same.

#include <optional>
#include <string>
#include <string_view>

#include "conf/endpoint.hpp"

namespace postern::net {

class starttls_dialogue {
 public:
  enum class action { send, read_more, start_tls, fail };
  /// Why the dialogue failed; the clients classify their result by it.
  enum class failure {
    none,
    refused,           ///< the greeting, or SMTP's EHLO, was refused (`code` for SMTP)
    not_offered,       ///< SMTP: EHLO listed no STARTTLS
    starttls_refused,  ///< the STARTTLS/STLS command itself was refused
    malformed,         ///< not the protocol's syntax
    injected,          ///< bytes followed the go-ahead (CVE-2011-0411)
    oversized,         ///< a line or the number of lines over the bounds
  };
  struct step {
    action what = action::read_more;
    std::string data;  ///< send: the bytes to send; fail: the reason
    failure why = failure::none;
    std::string server_line;  ///< fail: the server's line that ended the dialogue, if any
    int code = 0;             ///< fail, SMTP: the refusing reply's code
    /// The reason with the server's words: "SMTP server refused STARTTLS: server said ...".
    [[nodiscard]] std::string explain() const;
  };

  /// `hello_name` is the name for SMTP EHLO and LMTP LHLO.
  starttls_dialogue(conf::app_protocol protocol, std::string hello_name);

  /// Feeds bytes received from the server; returns the next step. After `send`, call
  /// on_input again with no bytes to continue with what is already buffered.
  step on_input(std::string_view bytes);
  /// Feeds one complete line, without its line end; `more_input`: bytes followed it in the
  /// same read (after the go-ahead that is an injection). Returns the next step.
  step on_line(std::string_view line, bool more_input);

  /// What the local client must see first once TLS is up: the server's greeting (for IMAP
  /// without the pre-TLS CAPABILITY code, which would advertise STARTTLS/LOGINDISABLED).
  [[nodiscard]] const std::string& greeting_for_client() const { return greeting_; }
  /// Lines exchanged so far, for --trace.
  [[nodiscard]] const std::string& transcript() const { return transcript_; }
  [[nodiscard]] bool finished() const { return state_ == state::done || state_ == state::failed; }

  /// Bounds: a server that sends more is refused rather than buffered.
  static constexpr std::size_t max_line = 4096;
  static constexpr std::size_t max_lines = 200;

 private:
  enum class state { greeting, capabilities, starttls_reply, done, failed };
  step handle_line(std::string_view line);
  step handle_smtp(std::string_view line);
  step handle_pop3(std::string_view line);
  step handle_imap(std::string_view line);
  step send(state next, std::string command);
  step fail(failure why, std::string reason, std::string_view line = {}, int code = 0);

  conf::app_protocol protocol_;
  std::string hello_name_;
  state state_ = state::greeting;
  std::string buffer_;
  std::string greeting_;
  std::string transcript_;
  std::size_t lines_ = 0;
  bool starttls_offered_ = false;
};

/// A client machine's action for a dialogue step that is not a failure (nullopt for `fail`):
/// `Action` has `what`, `bytes` and `line` (read one line for on_line); the caller names its
/// kinds for sending (then reading a line), reading a line, and starting TLS.
template <class Action, class Kind>
std::optional<Action> client_action(starttls_dialogue::step& s, Kind send, Kind read, Kind tls) {
  Action a;
  switch (s.what) {
    case starttls_dialogue::action::send:
      a.what = send;
      a.bytes = std::move(s.data);  // a CRLF-terminated command
      a.line = true;
      return a;
    case starttls_dialogue::action::read_more:
      a.what = read;
      a.line = true;
      return a;
    case starttls_dialogue::action::start_tls: a.what = tls; return a;
    case starttls_dialogue::action::fail: break;
  }
  return std::nullopt;
}

const char* to_string(starttls_dialogue::action a);
const char* to_string(starttls_dialogue::failure f);

}  // namespace postern::net
