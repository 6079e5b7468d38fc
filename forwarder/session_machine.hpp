#pragma once
/// The forwarder's SMTP server session without I/O: each command line goes in, the replies
/// and the next step come out. The rules that keep the forwarder from being an open relay or
/// a password oracle live here, unit-tested step by step: EHLO before MAIL, MAIL before RCPT,
/// AUTH only over TLS or from this host and never during a transaction, nothing pipelined
/// after STARTTLS (CVE-2011-0411), everything learnt before TLS forgotten after it, at most
/// ten errors and three failed logins per session. The session coroutine moves the bytes,
/// asks the relay, checks the password off the loop.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conf/secret.hpp"
#include "forwarder/client_auth.hpp"
#include "forwarder/smtp/command.hpp"
#include "forwarder/smtp/reply.hpp"

namespace postern::forwarder {

class session_machine {
 public:
  enum class state {
    command,  ///< waiting for a command line
    sasl,     ///< an AUTH exchange waits for the client's next line
    locked,   ///< AUTH: the driver checks the address's lockout
    verify,   ///< AUTH: the driver checks the credentials
    tls,      ///< STARTTLS: the handshake runs
    relay,    ///< MAIL or RCPT: the relay answers
    data,     ///< DATA: the message streams to the relay
    closed,   ///< the session ends
  };

  struct action {
    enum class kind {
      read_command,  ///< send `replies`, read the next command line (on_line)
      read_sasl,     ///< send `replies` (a 334 challenge), read one line, never traced
      check_lock,    ///< AUTH: on_lock(seconds the address stays locked, 0 if not)
      verify,        ///< check `credentials` off the loop, then on_verified
      start_tls,     ///< send `replies` (220), run the server handshake, then on_tls
      relay_mail,    ///< relay MAIL FROM `path`, then on_relayed
      relay_rcpt,    ///< relay RCPT TO `path`, then on_relayed
      relay_data,    ///< send `replies` (354), stream the message to the relay, on_data_done
      close,         ///< send `replies`, end the session
    };
    kind what = kind::read_command;
    std::vector<smtp::reply> replies;
    bool reset_relay = false;  ///< the relay's transaction ends first (EHLO, RSET, TLS, DATA)
    std::optional<smtp::mail_path> path;
    std::optional<plain_credentials> credentials;  ///< verify: wiped by the driver after
  };

  struct settings {
    std::string hostname;
    std::uint64_t max_message_size = 0;
    bool tls_available = false;   ///< a certificate is configured (STARTTLS offered)
    bool auth_available = false;  ///< auth_users_file is configured
    bool peer_allowed = false;    ///< the client's address is in `allow`
    bool peer_local = false;      ///< the client is on this host (AUTH without TLS is safe)
    std::string peer_address;     ///< for replies: "does not relay for ..."
    std::string peer_ip;          ///< for replies: "too many failed logins from ..."
  };

  static constexpr std::size_t max_command_line = 2048;  ///< RFC 5321's 512 is too few
  static constexpr int max_errors = 10;
  static constexpr int max_auth_failures = 3;

  explicit session_machine(settings s);

  action greet();
  /// A command line; `more_input`: the client sent more after it in the same read.
  action on_line(std::string_view line, bool more_input);
  action on_line_too_long();
  action on_timeout();
  action on_closed();
  action on_write_failed();
  /// The client's next line of an AUTH exchange; nullopt when the connection failed.
  action on_sasl_line(const std::optional<std::string>& line);
  action on_lock(long locked_seconds);
  /// `locked_now`: this failure (or others from the same address) locked the address.
  action on_verified(bool ok, bool locked_now);
  action on_tls(bool ok, const std::string& error);
  /// The relay's answer to MAIL or RCPT, and its transaction afterwards.
  action on_relayed(const smtp::reply& answer, bool has_sender, std::size_t recipients);
  /// The relay's final answer; nullopt when the client went away during DATA (`error`).
  action on_data_done(const std::optional<smtp::reply>& answer, const std::string& error);

  [[nodiscard]] state current() const { return state_; }
  [[nodiscard]] const std::string& helo() const { return helo_; }
  [[nodiscard]] const std::optional<std::string>& user() const { return user_; }
  [[nodiscard]] bool tls() const { return tls_; }
  [[nodiscard]] const std::string& reason() const { return reason_; }
  [[nodiscard]] std::uint64_t relayed() const { return relayed_; }
  [[nodiscard]] std::uint64_t refused() const { return refused_; }
  /// AUTH is offered only where the password cannot be sniffed: over TLS, or on this host.
  [[nodiscard]] bool auth_offered() const {
    return settings_.auth_available && (tls_ || settings_.peer_local);
  }

 private:
  action reply(int code, std::string_view enhanced, const std::string& text);
  action error(int code, std::string_view enhanced, const std::string& text);
  action close(std::string reason, std::optional<smtp::reply> last = std::nullopt);
  /// Back to reading commands, unless the errors so far end the session.
  action next(action a);
  action ehlo(const smtp::command& cmd);
  action auth(const std::string& arg);
  action auth_exchange();
  action start_tls(bool more_input);
  action envelope(const smtp::command& cmd);
  action data();
  action sasl(const std::string& challenge);
  action verify();
  [[nodiscard]] smtp::reply ehlo_reply() const;
  void forget_transaction();

  settings settings_;
  state state_ = state::command;
  std::string helo_;
  std::optional<std::string> user_;
  bool tls_ = false;
  bool has_sender_ = false;
  std::size_t recipients_ = 0;
  int errors_ = 0;
  int auth_failures_ = 0;
  std::string reason_;
  std::uint64_t relayed_ = 0, refused_ = 0;
  // An AUTH exchange in progress.
  std::string auth_arg_;  ///< the AUTH command's argument, parsed once the lockout is checked
  std::string mechanism_;
  std::string pending_user_;              ///< whose credentials are being checked
  std::vector<conf::secret> sasl_lines_;  ///< what the client said so far (base64)
  std::size_t sasl_needed_ = 0;
};

const char* to_string(session_machine::state s);

}  // namespace postern::forwarder
