#pragma once
/// The IMAP client's dialogue without I/O (RFC 3501; STARTTLS through net::starttls_dialogue;
/// SASL-IR RFC 4959, LITERAL+ RFC 7888, ENABLE RFC 5161, UIDPLUS RFC 4315, MOVE RFC 6851,
/// IDLE RFC 2177, CONDSTORE/QRESYNC RFC 7162): what to send, which response ends an
/// operation, where a message's octets go, and the classified result of each operation.
/// imap_client moves the bytes. Commands are tagged and may be pipelined: bodies asked for
/// ahead and flag changes, copies and expunges sent without waiting are answered in the order
/// they were sent; their answers are read before the answer of a later command.

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "conf/secret.hpp"
#include "fetch/imap_protocol.hpp"
#include "fetch/mail_session.hpp"
#include "tunnel/net/starttls_dialogue.hpp"

namespace postern::fetch {

using imap_result = session_result;

/// What SELECT (or EXAMINE) said of a folder.
struct imap_folder {
  std::uint32_t uidvalidity = 0;
  std::uint32_t uidnext = 0;  ///< 0: not sent
  std::uint32_t exists = 0;
  std::optional<std::uint64_t> highest_modseq;  ///< CONDSTORE; none with NOMODSEQ
  bool read_only = false;
  std::vector<std::uint32_t> vanished;  ///< QRESYNC: UIDs expunged since the given modseq
};

/// One message of a listing: its UID and RFC822.SIZE.
struct imap_listed {
  std::uint32_t uid = 0;
  std::uint64_t size = 0;
};

/// One message's header section (BODY.PEEK[HEADER]) with its size.
struct imap_header {
  std::uint32_t uid = 0;
  std::uint64_t size = 0;
  std::string header;
};

class imap_machine {
 public:
  enum class state {
    idle,       ///< not connected
    tls_first,  ///< implicit TLS before the greeting
    greeting,
    preamble,          ///< the STARTTLS dialogue in net::starttls_dialogue
    tls,               ///< handshake after STARTTLS
    capability,        ///< CAPABILITY sent before login
    password,          ///< waiting for our own password
    authenticate,      ///< AUTHENTICATE PLAIN sent
    login,             ///< LOGIN sent
    capability_after,  ///< CAPABILITY after login (they may change, RFC 3501 §6.2.3)
    enable,            ///< ENABLE QRESYNC/CONDSTORE sent
    ready,             ///< authenticated, nothing of ours awaited
    command,           ///< one of our commands awaited (SELECT, UID FETCH, ...)
    idle_start,        ///< IDLE sent, its continuation awaited
    idling,            ///< in IDLE: untagged responses until new mail or DONE
    idle_done,         ///< DONE sent, IDLE's tagged answer awaited
    logout,
    broken,  ///< the session cannot be used any more
  };

  struct action {
    enum class kind {
      send,       ///< queue `bytes`, send everything queued, then read a response
                  ///< (with `line`: one line of the STARTTLS dialogue, for on_line)
      queue,      ///< queue `bytes` to go with the next command; the operation is done
      read,       ///< send what is queued, then read one response
      idle_wait,  ///< read one response, waiting up to the IDLE period; on_idle_timeout if none
      start_tls,  ///< TLS handshake and checks, then on_tls
      password,   ///< get our password, then on_password
      done,       ///< the operation ended with `result`
    };
    kind what = kind::done;
    std::string bytes;
    bool sensitive = false;  ///< `bytes` hold a credential
    bool line = false;       ///< send/read: a line of the STARTTLS dialogue, for on_line
    imap_result result;      ///< done
    bool close = false;      ///< done: drop the connection
    /// A pipelined command the server refused (its command and reply): the driver logs it.
    std::optional<std::pair<std::string, std::string>> refused;
  };

  struct settings {
    bool implicit_tls = false;
    bool starttls = false;  ///< required: a refused STARTTLS fails, never a cleartext login
    std::string login;
    std::string server;  ///< the endpoint, for messages
  };

  /// What the driver does with a literal announced at the end of a line.
  enum class literal_use { stream, discard, collect };

  explicit imap_machine(settings s);

  action open();
  /// SELECT (EXAMINE when `read_only`) `folder` (UTF-8); with QRESYNC enabled and the folder's
  /// last UIDVALIDITY and HIGHESTMODSEQ known, asks for the UIDs expunged since.
  action select(const std::string& folder, bool read_only, std::uint32_t known_uidvalidity = 0,
                std::uint64_t known_modseq = 0);
  /// UID FETCH from:* (UID RFC822.SIZE): the messages with UID from and above, in listing().
  action list(std::uint32_t from_uid);
  /// UID FETCH set (UID RFC822.SIZE BODY.PEEK[HEADER]), in headers().
  action headers(const std::string& uid_set);
  /// Asks for message `uid` ahead: its octets come when body(uid) reads them.
  action request_body(std::uint32_t uid);
  /// Message `uid`'s octets (BODY.PEEK[], so \Seen is not set), streamed to the driver's
  /// sink; done with ok and found() false when the server has no such message any more.
  action body(std::uint32_t uid);
  /// Pipelined changes, answered later: UID STORE set +FLAGS.SILENT (flags), UID COPY,
  /// UID MOVE (RFC 6851), UID EXPUNGE (UIDPLUS). Refusals are counted and logged.
  action store(const std::string& uid_set, const std::string& flags);
  action copy(const std::string& uid_set, const std::string& folder);
  action move(const std::string& uid_set, const std::string& folder);
  action expunge(const std::string& uid_set);
  /// Reads the answers to everything pipelined (a NOOP makes sure the server is caught up).
  action sync();
  /// IDLE until the folder has new mail (done, new_mail()), or the driver's period ends.
  action idle();
  action logout();

  action on_line(std::string_view line, bool more_input);
  action on_response(const imap_response& r);
  /// A literal at the end of `line`: a message body is streamed (when it is the awaited one)
  /// or discarded; anything else is collected (up to the driver's bound).
  literal_use on_literal(std::string_view line);
  action on_tls(const imap_result& r);
  action on_password(std::optional<conf::secret> password, const std::string& error);
  /// The IDLE period passed with no new mail: DONE, then IDLE's answer.
  action on_idle_timeout();
  action on_io_failure(imap_result r);

  [[nodiscard]] state current() const { return state_; }
  [[nodiscard]] bool broken() const { return state_ == state::broken; }
  [[nodiscard]] const imap_capabilities& capabilities() const { return caps_; }
  [[nodiscard]] bool qresync() const { return qresync_; }
  [[nodiscard]] bool condstore() const { return condstore_ || qresync_; }
  [[nodiscard]] const imap_folder& folder() const { return folder_; }
  std::vector<imap_listed> take_listing() { return std::move(listing_); }
  std::vector<imap_header> take_headers() { return std::move(headers_); }
  /// body(): the server sent the message.
  [[nodiscard]] bool found() const { return found_; }
  /// idle(): the folder has more messages than when IDLE began.
  [[nodiscard]] bool new_mail() const { return new_mail_; }
  /// UIDs the server confirmed expunged (UID EXPUNGE answered OK) or moved (UID MOVE OK).
  [[nodiscard]] std::uint32_t expunged() const { return expunged_; }
  [[nodiscard]] std::uint32_t moved() const { return moved_; }
  /// Pipelined changes the server refused.
  [[nodiscard]] std::uint32_t refusals() const { return refusals_; }
  /// Pipelined commands whose answer has not been read.
  [[nodiscard]] std::size_t outstanding() const { return pending_.size(); }

 private:
  enum class op { own, body_ahead, change, noop };
  struct pending {
    std::string tag;
    op what;
    std::uint32_t uid = 0;    ///< body_ahead
    std::string command;      ///< change: for the log ("UID STORE 5 ...")
    std::uint32_t count = 0;  ///< change: UIDs it covers (expunge, move)
    bool counts_expunge = false, counts_move = false;
  };
  enum class command_kind { select, list, headers, body, noop, logout };
  std::string next_tag();
  action send(state next, std::string line, bool sensitive = false);
  action read();
  action finish(imap_result r, state next = state::ready);
  action fail(failure_kind kind, std::string detail, std::string server = {});
  action end_session(imap_result r);
  action unless_ready(const char* what);
  action own_command(command_kind k, std::string command);
  action change(std::string command, std::uint32_t count, bool expunges, bool moves);
  action dialogue_step(net::starttls_dialogue::step step);
  action after_greeting(const imap_response& r);
  action login();
  action after_login(const imap_response& r);
  action after_capabilities();
  action untagged(const imap_response& r);
  action tagged(const imap_response& r);
  action own_done(const imap_response& r);
  action background_done(const pending& p, const imap_response& r);
  void fetch_data(const imap_response& r);

  settings settings_;
  state state_ = state::idle;
  std::optional<net::starttls_dialogue> dialogue_;
  imap_capabilities caps_;
  bool have_caps_ = false;
  bool qresync_ = false, condstore_ = false;
  std::uint32_t tag_counter_ = 0;
  std::deque<pending> pending_;  ///< sent, answer not read, oldest first
  std::string own_tag_;          ///< the tag of the awaited command
  command_kind own_kind_ = command_kind::noop;
  std::uint32_t own_uid_ = 0;  ///< body(): which message
  bool found_ = false, new_mail_ = false;
  std::uint32_t idle_exists_ = 0;
  imap_folder folder_;
  std::vector<imap_listed> listing_;
  std::uint32_t listing_from_ = 1;
  std::vector<imap_header> headers_;
  std::optional<conf::secret> password_;
  std::string bye_;  ///< the server's BYE text, for the failure that follows it
  std::uint32_t expunged_ = 0, moved_ = 0, refusals_ = 0;
};

const char* to_string(imap_machine::state s);

}  // namespace postern::fetch
