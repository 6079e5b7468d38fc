#pragma once
/// The plaintext preamble before STARTTLS (SMTP RFC 3207, POP3 STLS RFC 2595, IMAP RFC 3501),
/// as a state machine that does no I/O: feed it what the server sent, it answers with what to
/// send next, when to start TLS, or why it failed.

#include <string>
#include <string_view>

#include "conf/endpoint.hpp"

namespace postern::net {

class starttls_dialogue {
 public:
  enum class action { send, read_more, start_tls, fail };
  struct step {
    action what = action::read_more;
    std::string data;  ///< bytes to send (send), or the reason (fail)
  };

  /// `ehlo_name` is the name for SMTP EHLO.
  starttls_dialogue(conf::app_protocol protocol, std::string ehlo_name);

  /// Feeds bytes received from the server; returns the next step. After `send`, call
  /// on_input again with no bytes to continue with what is already buffered.
  step on_input(std::string_view bytes);

  /// What the local client must see first once TLS is up: the server's greeting (for IMAP
  /// without the pre-TLS CAPABILITY code, which would advertise STARTTLS/LOGINDISABLED).
  [[nodiscard]] const std::string& greeting_for_client() const { return greeting_; }
  /// Lines exchanged so far, for --trace.
  [[nodiscard]] const std::string& transcript() const { return transcript_; }

  /// Bounds: a server that sends more is refused rather than buffered.
  static constexpr std::size_t max_line = 4096;
  static constexpr std::size_t max_lines = 200;

 private:
  enum class state { greeting, capabilities, starttls_reply, done, failed };
  step handle_line(std::string_view line);
  step handle_smtp(std::string_view line);
  step handle_pop3(std::string_view line);
  step handle_imap(std::string_view line);
  step fail(std::string why, std::string_view line = {});

  conf::app_protocol protocol_;
  std::string ehlo_name_;
  state state_ = state::greeting;
  std::string buffer_;
  std::string greeting_;
  std::string transcript_;
  std::size_t lines_ = 0;
  bool starttls_offered_ = false;
};

const char* to_string(starttls_dialogue::action a);

}  // namespace postern::net
