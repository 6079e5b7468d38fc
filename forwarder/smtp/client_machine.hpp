#pragma once
/// The SMTP/LMTP client's dialogue without I/O: what to send, when to read a reply, when to
/// start TLS, when the password is needed, and the classified result of each operation.
/// smtp::client moves the bytes; this decides. Every reply of every step lands here, so the
/// rules (STARTTLS or nothing, no data before TLS, AUTH exchanges, pipelined replies matched
/// in order, DATA must be answered 354) are unit-tested without a socket.

#include <optional>
#include <string>
#include <vector>

#include "conf/secret.hpp"
#include "forwarder/smtp/reply.hpp"
#include "forwarder/smtp/sasl.hpp"
#include "tunnel/net/starttls_dialogue.hpp"

namespace postern::smtp {

enum class failure_kind {
  none,
  connection,          ///< could not connect, or the connection dropped
  tls,                 ///< handshake or verification failed, or STARTTLS not offered
  protocol,            ///< the server said something that is not SMTP
  auth,                ///< the server refused our login
  credentials,         ///< our own password could not be read (file, command)
  rejected_temporary,  ///< a 4yz reply
  rejected_permanent,  ///< a 5yz reply
  timeout,             ///< a phase ran out of time
};
const char* to_string(failure_kind k);

struct client_result {
  failure_kind kind = failure_kind::none;
  reply server;        ///< the server's reply, when there was one (code 0 otherwise)
  std::string detail;  ///< what happened, for logs; never holds a secret
  [[nodiscard]] bool ok() const { return kind == failure_kind::none; }
};

/// ok for 2yz and 3yz, else the temporary or permanent rejection.
failure_kind classify(const reply& r);

/// How long a reply may take: a command's, the final reply after the message, QUIT's.
enum class reply_wait { command, final, quit };

class client_machine {
 public:
  enum class state {
    idle,       ///< not connected
    tls_first,  ///< implicit TLS before the greeting
    greeting,
    ehlo,
    preamble,     ///< the STARTTLS dialogue (greeting, EHLO, STARTTLS) in net::starttls_dialogue
    tls,          ///< handshake after STARTTLS
    ehlo_again,   ///< EHLO after STARTTLS (RFC 3207 §4.2: forget what was said before)
    password,     ///< waiting for our own password
    auth,         ///< AUTH sent, or an exchange step
    auth_cancel,  ///< "*" sent after a challenge we did not expect
    ready,        ///< logged in, no transaction
    mail,
    rcpt,
    data,
    pipelined,      ///< MAIL, RCPT and DATA sent at once; replies read in that order
    empty_message,  ///< "." sent to end a DATA no recipient should have started
    body,           ///< 354 received: the message is being sent
    end_of_data,
    rset,
    quit,
    broken,  ///< the session cannot be used any more
  };

  struct action {
    enum class kind {
      send,       ///< write `bytes`, then read one reply and call on_reply
      read,       ///< read one reply and call on_reply
      start_tls,  ///< run the client TLS handshake and checks, then call on_tls
      password,   ///< get our password, then call on_password
      done,       ///< the operation ended with `result`
    };
    kind what = kind::done;
    std::string bytes;
    bool line = false;       ///< send/read: read one line and call on_line, not a whole reply
    bool sensitive = false;  ///< `bytes` hold a credential: trace lines redact them
    reply_wait wait = reply_wait::command;
    client_result result;
    bool close = false;  ///< with done: drop the connection
  };

  struct settings {
    std::string helo_name;
    bool lmtp = false;  ///< RFC 2033: LHLO instead of EHLO
    bool implicit_tls = false;
    bool starttls = false;  ///< required: no STARTTLS offered is a failure, never cleartext
    std::string login;      ///< "" = no AUTH
    std::string server;     ///< the endpoint, for messages
  };

  explicit client_machine(settings s);

  /// Starts the session (the connection is up): TLS first or the greeting.
  action open();
  action mail(const std::string& path);  ///< MAIL FROM:<path>
  action rcpt(const std::string& path);  ///< RCPT TO:<path>
  action data();                         ///< DATA; success is 354
  /// MAIL, one RCPT and DATA: in one write with PIPELINING (RFC 2920), else one at a time.
  action envelope(const std::string& from, const std::string& to);
  /// The message's bytes were sent, with the final dot: read the final reply.
  action end_data();
  action reset();  ///< RSET
  action quit();   ///< QUIT (whatever the answer, the session then ends)

  /// A complete reply.
  action on_reply(const reply& r);
  /// A line of the STARTTLS dialogue, without its line end; `more_input`: bytes followed it in
  /// the same read (the server spoke out of turn, which after STARTTLS's 220 is an injection
  /// attack, RFC 3207 §6).
  action on_line(std::string_view line, bool more_input);
  action on_tls(const client_result& r);
  action on_password(std::optional<conf::secret> password, const std::string& error);
  /// Reading or writing failed: the session is over, `r` says how.
  action on_io_failure(client_result r);

  [[nodiscard]] state current() const { return state_; }
  [[nodiscard]] const ehlo_capabilities& capabilities() const { return caps_; }
  [[nodiscard]] const std::string& auth_used() const { return auth_used_; }
  [[nodiscard]] bool broken() const { return state_ == state::broken; }
  [[nodiscard]] bool in_transaction() const { return in_transaction_; }

 private:
  action send(state next, std::string line, bool sensitive = false,
              reply_wait wait = reply_wait::command);
  action finish(client_result r, state next);
  action fail(failure_kind kind, std::string detail);
  /// The session cannot go on (a refusal while opening it, a failure): `r`, and close.
  action end_session(client_result r);
  /// `what` asked for outside the state that allows it: a bug of the caller, refused.
  action unless_ready(const char* what);
  action after_greeting(const reply& r);
  action after_ehlo(const reply& r);
  action dialogue_step(net::starttls_dialogue::step step);
  action start_auth();
  action auth_step(const reply& r);
  action auth_outcome(const reply& r);
  action pipelined_reply(const reply& r);
  action data_reply(const reply& r);
  action logged_in();

  settings settings_;
  state state_ = state::idle;
  std::optional<net::starttls_dialogue> dialogue_;
  ehlo_capabilities caps_;
  std::optional<auth_mechanism> mechanism_;
  std::string auth_used_;
  std::optional<conf::secret> password_;
  int auth_steps_ = 0;  ///< 334 challenges answered in this exchange
  bool in_transaction_ = false;
  std::optional<std::string> envelope_to_;  ///< envelope() without PIPELINING: RCPT after MAIL
  bool envelope_data_ = false;              ///< ... and DATA after RCPT
  std::vector<reply> pipelined_;            ///< replies to MAIL, RCPT, DATA read so far
  reply first_refusal_;                     ///< of MAIL or RCPT, in a pipelined envelope
};

const char* to_string(client_machine::state s);

}  // namespace postern::smtp
