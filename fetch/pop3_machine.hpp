#pragma once
/// The POP3 client's dialogue without I/O (RFC 1939; CAPA, PIPELINING from RFC 2449; STLS from
/// RFC 2595; AUTH PLAIN from RFC 5034): what to send, which answer comes next, when to read a
/// listing or a message, and the classified result of each operation. pop3_client moves the
/// bytes. The pipelining window lives here: RETRs asked for ahead and DELEs sent without
/// waiting are answered in the order they were sent, before the command that follows them.

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "conf/secret.hpp"
#include "fetch/mail_session.hpp"
#include "fetch/pop3_protocol.hpp"
#include "forwarder/smtp/client_machine.hpp"
#include "tunnel/net/starttls_dialogue.hpp"

namespace postern::fetch {

using pop3_result = session_result;

class pop3_machine {
 public:
  enum class state {
    idle,       ///< not connected
    tls_first,  ///< implicit TLS before the greeting
    greeting,
    capa,        ///< CAPA sent (its -ERR means an old server: no capabilities)
    preamble,    ///< the STLS dialogue (greeting, STLS) in net::starttls_dialogue
    tls,         ///< handshake after STLS
    capa_again,  ///< CAPA after STLS: capabilities may differ once TLS is up (RFC 2595 §4)
    password,    ///< waiting for our own password
    auth,        ///< AUTH PLAIN sent
    user,        ///< USER sent
    pass,        ///< PASS sent
    ready,       ///< logged in (transaction state), nothing outstanding of ours
    command,     ///< UIDL, LIST or TOP sent: its status, then its listing
    retr,        ///< RETR: its status, then the message
    dele,        ///< DELE sent without PIPELINING
    quit,
    broken,  ///< the session cannot be used any more
  };

  struct action {
    enum class kind {
      send,         ///< queue `bytes`, send everything queued, then read a status line
                    ///< (with `line`: one line of the STLS dialogue, for on_line)
      queue,        ///< queue `bytes` to go with the next command; the operation is done
      read_status,  ///< read one status line (the answer to something sent before)
      read_lines,   ///< read a multi-line answer to its "." (CAPA: on_capa, else on_lines_done)
      read_body,    ///< read message `number` to its "." (to the sink, or discarded)
      start_tls,    ///< TLS handshake and checks, then on_tls
      password,     ///< get our password, then on_password
      done,         ///< the operation ended with `result`
    };
    kind what = kind::done;
    std::string bytes;
    bool sensitive = false;    ///< `bytes` hold a credential
    bool line = false;         ///< send/read_status: the line goes to on_line
    bool flush_first = false;  ///< read_status: send what is queued before reading
    bool capa = false;         ///< read_lines: the CAPA answer
    std::uint32_t number = 0;  ///< read_body: which message
    bool discard = false;      ///< read_body: asked for ahead, no longer wanted
    pop3_result result;        ///< done
    bool close = false;        ///< done: drop the connection
    /// A pipelined DELE the server refused (number, its text): the driver logs it.
    std::optional<std::pair<std::uint32_t, std::string>> refused_dele;
  };

  struct settings {
    bool implicit_tls = false;
    bool stls = false;  ///< required: no STLS offered is a failure, never a cleartext login
    std::string login;
    std::string server;  ///< the endpoint, for messages
  };

  explicit pop3_machine(settings s);

  action open();
  /// UIDL, LIST or "TOP n 0": the status, then (if +OK) the listing for the caller. `refused`
  /// replaces the detail of a -ERR.
  action listing(std::string command, std::string refused = {});
  /// With PIPELINING, RETR `number` now, answered later (retr reads it); else nothing.
  action request_retr(std::uint32_t number);
  action retr(std::uint32_t number);
  /// With PIPELINING the DELE goes with the next command; without, it is awaited.
  action dele(std::uint32_t number);
  action quit();

  /// A status line; nullopt when the line was neither +OK nor -ERR.
  action on_status(const std::optional<pop3_status>& s);
  /// A line of the STLS dialogue; `more_input`: bytes followed it in the same read (after the
  /// go-ahead, an injection: RFC 2595 §4).
  action on_line(std::string_view line, bool more_input);
  action on_capa(const std::vector<std::string>& lines);
  action on_lines_done();
  action on_body_done();
  action on_tls(const pop3_result& r);
  action on_password(std::optional<conf::secret> password, const std::string& error);
  /// Reading, writing or parsing failed: the session is over, `r` says how.
  action on_io_failure(pop3_result r);

  [[nodiscard]] state current() const { return state_; }
  [[nodiscard]] const pop3_capabilities& capabilities() const { return caps_; }
  [[nodiscard]] bool broken() const { return state_ == state::broken; }
  [[nodiscard]] std::uint32_t deletions() const { return deletions_; }
  [[nodiscard]] std::uint32_t pending_deletions() const;

 private:
  struct pending {
    bool retr;  ///< RETR (a status, then a message), else DELE
    std::uint32_t number;
  };
  action send(state next, std::string line, bool sensitive = false);
  action read_status(bool flush_first = false);
  action finish(pop3_result r, state next = state::ready);
  action fail(failure_kind kind, std::string detail);
  /// The session cannot go on (a refusal while opening it, a failure): `r`, and close.
  action end_session(pop3_result r);
  /// `what` asked for outside the state that allows it: a bug of the caller, refused.
  action unless_ready(const char* what);
  action next_answer();
  action pending_status(const pop3_status& s);
  action own_status(const pop3_status& s);
  action after_capa(const pop3_status& s);
  action dialogue_step(net::starttls_dialogue::step step);
  action login();
  action login_status(const pop3_status& s);

  settings settings_;
  state state_ = state::idle;
  std::optional<net::starttls_dialogue> dialogue_;
  pop3_capabilities caps_;
  std::deque<pending> pending_;  ///< pipelined commands whose answer is not read, oldest first
  std::optional<std::uint32_t> waiting_for_;  ///< retr(): the pending RETR being read
  bool pending_body_ = false;  ///< the front pending RETR's message is being discarded
  std::string refused_;        ///< listing(): the detail of a -ERR
  std::optional<conf::secret> password_;
  bool plain_ = false;  ///< AUTH PLAIN, else USER/PASS
  std::uint32_t deletions_ = 0;
};

const char* to_string(pop3_machine::state s);

}  // namespace postern::fetch
