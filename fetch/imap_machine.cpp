#include "imap_machine.hpp"

#include <algorithm>

#include "forwarder/smtp/sasl.hpp"

namespace postern::fetch {

using kind = imap_machine::action::kind;

const char* to_string(imap_machine::state s) {
  using st = imap_machine::state;
  switch (s) {
    case st::idle: return "idle";
    case st::tls_first: return "tls_first";
    case st::greeting: return "greeting";
    case st::preamble: return "preamble";
    case st::tls: return "tls";
    case st::capability: return "capability";
    case st::password: return "password";
    case st::authenticate: return "authenticate";
    case st::login: return "login";
    case st::capability_after: return "capability_after";
    case st::enable: return "enable";
    case st::ready: return "ready";
    case st::command: return "command";
    case st::idle_start: return "idle_start";
    case st::idling: return "idling";
    case st::idle_done: return "idle_done";
    case st::logout: return "logout";
    case st::broken: return "broken";
  }
  return "?";
}

imap_machine::imap_machine(settings s) : settings_(std::move(s)) {}

std::string imap_machine::next_tag() { return "p" + std::to_string(++tag_counter_); }

imap_machine::action imap_machine::send(state next, std::string line, bool sensitive) {
  state_ = next;
  action a;
  a.what = kind::send;
  a.bytes = std::move(line) + "\r\n";
  a.sensitive = sensitive;
  return a;
}

imap_machine::action imap_machine::read() {
  action a;
  a.what = kind::read;
  return a;
}

imap_machine::action imap_machine::finish(imap_result r, state next) {
  state_ = next;
  own_tag_.clear();
  action a;
  a.result = std::move(r);
  return a;
}

imap_machine::action imap_machine::end_session(imap_result r) {
  password_.reset();
  pending_.clear();
  if (!bye_.empty() && r.server.empty()) r.server = bye_;
  action a = finish(std::move(r), state::broken);
  a.close = true;
  return a;
}

imap_machine::action imap_machine::fail(failure_kind k, std::string detail, std::string server) {
  return end_session({k, std::move(server), std::move(detail)});
}

imap_machine::action imap_machine::unless_ready(const char* what) {
  return fail(failure_kind::protocol,
              std::string(what) + " while the session is " + to_string(state_) + ", not ready");
}

imap_machine::action imap_machine::on_io_failure(imap_result r) {
  return fail(r.kind, std::move(r.detail));
}

// --- opening: TLS, greeting, STARTTLS, capabilities, login, ENABLE ----------------------------

imap_machine::action imap_machine::open() {
  caps_ = {};
  have_caps_ = false;
  pending_.clear();
  if (settings_.implicit_tls) {
    state_ = state::tls_first;
    action a;
    a.what = kind::start_tls;
    return a;
  }
  if (settings_.starttls) {
    dialogue_.emplace(conf::app_protocol::imap, std::string());
    state_ = state::preamble;
    action a = read();
    a.line = true;
    return a;
  }
  state_ = state::greeting;
  return read();
}

imap_machine::action imap_machine::on_line(std::string_view line, bool more_input) {
  if (state_ != state::preamble || !dialogue_)
    return fail(failure_kind::protocol, "a dialogue line where none was expected");
  return dialogue_step(dialogue_->on_line(line, more_input));
}

imap_machine::action imap_machine::dialogue_step(net::starttls_dialogue::step step) {
  if (auto a = net::client_action<action>(step, kind::send, kind::read, kind::start_tls)) {
    if (a->what == kind::start_tls) {
      state_ = state::tls;
      dialogue_.reset();
    }
    return *a;
  }
  dialogue_.reset();
  return end_session(dialogue_failure(step, settings_.server));
}

imap_machine::action imap_machine::on_tls(const imap_result& r) {
  if (!r.ok()) return fail(r.kind, r.detail);
  if (state_ == state::tls_first) {
    state_ = state::greeting;
    return read();
  }
  // After STARTTLS the capabilities are asked again: those before TLS may have been forged.
  caps_ = {};
  have_caps_ = false;
  return send(state::capability, next_tag() + " CAPABILITY");
}

imap_machine::action imap_machine::after_greeting(const imap_response& r) {
  if (r.what != imap_response::kind::untagged ||
      (r.status != imap_status::ok && r.status != imap_status::preauth))
    return end_session({failure_kind::rejected_permanent, r.text,
                        r.status == imap_status::bye ? "the IMAP server refused the session"
                                                     : "not an IMAP greeting"});
  if (r.code == "CAPABILITY") {
    caps_ = parse_imap_capabilities(capability_words(r.code_arg));
    have_caps_ = caps_.imap4rev1;
  }
  if (r.status == imap_status::preauth) return after_capabilities();
  if (have_caps_) return login();
  return send(state::capability, next_tag() + " CAPABILITY");
}

imap_machine::action imap_machine::login() {
  state_ = state::password;
  action a;
  a.what = kind::password;
  return a;
}

imap_machine::action imap_machine::on_password(std::optional<conf::secret> password,
                                               const std::string& error) {
  if (!password) return fail(failure_kind::credentials, error.empty() ? "no password" : error);
  const std::string tag = next_tag();
  if (caps_.has_auth("PLAIN")) {
    conf::secret response = smtp::plain_response(settings_.login, *password);
    if (caps_.sasl_ir)
      return send(state::authenticate, tag + " AUTHENTICATE PLAIN " + response.reveal(), true);
    password_.emplace(response.reveal());
    return send(state::authenticate, tag + " AUTHENTICATE PLAIN");
  }
  if (caps_.login_disabled)
    return fail(failure_kind::auth,
                settings_.server +
                    " offers no login postern speaks (AUTHENTICATE PLAIN, or LOGIN, which it "
                    "disables)");
  auto user = imap_astring(settings_.login);
  auto pass = imap_astring(password->reveal());
  std::string args;
  if (!user) return fail(failure_kind::credentials, "the login has characters LOGIN cannot carry");
  if (pass) {
    args = *user + " " + *pass;
  } else if (caps_.literal_plus) {
    args = *user + " {" + std::to_string(password->reveal().size()) + "+}\r\n" + password->reveal();
  } else {
    return fail(failure_kind::credentials,
                "the password has characters (8-bit or line ends) that LOGIN can carry only as a "
                "literal, and the server offers neither LITERAL+ nor AUTHENTICATE PLAIN");
  }
  return send(state::login, tag + " LOGIN " + args, true);
}

imap_machine::action imap_machine::after_login(const imap_response& r) {
  password_.reset();
  if (r.status != imap_status::ok) {
    const char* how = state_ == state::login ? "LOGIN" : "AUTHENTICATE PLAIN";
    // [UNAVAILABLE] and [SERVERBUG] (RFC 5530) pass; anything else is the login itself.
    const bool temporary = r.code == "UNAVAILABLE" || r.code == "SERVERBUG";
    return end_session({temporary ? failure_kind::rejected_temporary : failure_kind::auth,
                        (r.code.empty() ? "" : "[" + r.code + "] ") + r.text,
                        std::string(how) + " as " + settings_.login + " refused"});
  }
  if (r.code == "CAPABILITY") {
    caps_ = parse_imap_capabilities(capability_words(r.code_arg));
    return after_capabilities();
  }
  return send(state::capability_after, next_tag() + " CAPABILITY");
}

imap_machine::action imap_machine::after_capabilities() {
  if (caps_.enable && (caps_.qresync || caps_.condstore))
    return send(state::enable,
                next_tag() + (caps_.qresync ? " ENABLE QRESYNC" : " ENABLE CONDSTORE"));
  condstore_ = caps_.condstore;  // without ENABLE, CONDSTORE works per command (RFC 7162 §3.1)
  return finish({});
}

// --- the authenticated and selected states ----------------------------------------------------

imap_machine::action imap_machine::own_command(command_kind k, std::string command) {
  if (state_ != state::ready) return unless_ready(command.c_str());
  own_kind_ = k;
  own_tag_ = next_tag();
  pending_.push_back({own_tag_, op::own});
  return send(state::command, own_tag_ + " " + command);
}

imap_machine::action imap_machine::select(const std::string& folder, bool read_only,
                                          std::uint32_t known_uidvalidity,
                                          std::uint64_t known_modseq) {
  folder_ = {};
  auto name = imap_astring(imap_folder_name(folder));
  if (!name) return fail(failure_kind::protocol, "folder name \"" + folder + "\" cannot be sent");
  std::string command = (read_only ? "EXAMINE " : "SELECT ") + *name;
  if (qresync_ && known_uidvalidity && known_modseq)
    command += " (QRESYNC (" + std::to_string(known_uidvalidity) + " " +
               std::to_string(known_modseq) + "))";
  else if (condstore_ && !qresync_)
    command += " (CONDSTORE)";
  return own_command(command_kind::select, std::move(command));
}

imap_machine::action imap_machine::list(std::uint32_t from_uid) {
  listing_.clear();
  listing_from_ = std::max<std::uint32_t>(from_uid, 1);
  return own_command(command_kind::list,
                     "UID FETCH " + std::to_string(listing_from_) + ":* (UID RFC822.SIZE)");
}

imap_machine::action imap_machine::headers(const std::string& uid_set) {
  headers_.clear();
  return own_command(command_kind::headers,
                     "UID FETCH " + uid_set + " (UID RFC822.SIZE BODY.PEEK[HEADER])");
}

imap_machine::action imap_machine::request_body(std::uint32_t uid) {
  if (broken()) return finish({}, state_);
  const std::string tag = next_tag();
  pending_.push_back({tag, op::body_ahead, uid});
  action a;
  a.what = kind::queue;
  a.bytes = tag + " UID FETCH " + std::to_string(uid) + " (UID BODY.PEEK[])\r\n";
  return a;
}

imap_machine::action imap_machine::body(std::uint32_t uid) {
  if (state_ != state::ready) return unless_ready("UID FETCH BODY");
  // Its body may have come already: discarded then, as it came while another was awaited,
  // so its command is either still answering (wait for its OK: not found) or answered (ask
  // again, below).
  found_ = false;
  own_uid_ = uid;
  own_kind_ = command_kind::body;
  auto it = std::find_if(pending_.begin(), pending_.end(), [uid](const pending& p) {
    return p.what == op::body_ahead && p.uid == uid;
  });
  if (it == pending_.end()) {
    own_tag_ = next_tag();
    pending_.push_back({own_tag_, op::own});
    return send(state::command,
                own_tag_ + " UID FETCH " + std::to_string(uid) + " (UID BODY.PEEK[])");
  }
  it->what = op::own;
  own_tag_ = it->tag;
  state_ = state::command;
  return read();
}

imap_machine::action imap_machine::change(std::string command, std::uint32_t count, bool expunges,
                                          bool moves) {
  if (state_ != state::ready) return unless_ready(command.c_str());
  const std::string tag = next_tag();
  pending_.push_back({tag, op::change, 0, command, count, expunges, moves});
  action a;
  a.what = kind::queue;
  a.bytes = tag + " " + command + "\r\n";
  return a;
}

namespace {
std::uint32_t count_of(const std::string& uid_set) {
  auto uids = parse_uid_set(uid_set);
  return uids ? static_cast<std::uint32_t>(uids->size()) : 0;
}
}  // namespace

imap_machine::action imap_machine::store(const std::string& uid_set, const std::string& flags) {
  return change("UID STORE " + uid_set + " +FLAGS.SILENT (" + flags + ")", 0, false, false);
}

imap_machine::action imap_machine::copy(const std::string& uid_set, const std::string& folder) {
  auto name = imap_astring(imap_folder_name(folder));
  if (!name) return fail(failure_kind::protocol, "folder name \"" + folder + "\" cannot be sent");
  return change("UID COPY " + uid_set + " " + *name, 0, false, false);
}

imap_machine::action imap_machine::move(const std::string& uid_set, const std::string& folder) {
  auto name = imap_astring(imap_folder_name(folder));
  if (!name) return fail(failure_kind::protocol, "folder name \"" + folder + "\" cannot be sent");
  return change("UID MOVE " + uid_set + " " + *name, count_of(uid_set), false, true);
}

imap_machine::action imap_machine::expunge(const std::string& uid_set) {
  return change("UID EXPUNGE " + uid_set, count_of(uid_set), true, false);
}

imap_machine::action imap_machine::sync() {
  if (pending_.empty()) return finish({}, state_);
  return own_command(command_kind::noop, "NOOP");
}

imap_machine::action imap_machine::idle() {
  if (!pending_.empty()) return unless_ready("IDLE with commands outstanding");
  if (state_ != state::ready) return unless_ready("IDLE");
  new_mail_ = false;
  idle_exists_ = folder_.exists;
  own_kind_ = command_kind::noop;
  own_tag_ = next_tag();
  pending_.push_back({own_tag_, op::own});
  return send(state::idle_start, own_tag_ + " IDLE");
}

imap_machine::action imap_machine::on_idle_timeout() {
  if (state_ != state::idling) return unless_ready("the end of IDLE");
  return send(state::idle_done, "DONE");
}

imap_machine::action imap_machine::logout() {
  if (state_ == state::broken) return finish({}, state::broken);
  own_kind_ = command_kind::logout;
  own_tag_ = next_tag();
  pending_.push_back({own_tag_, op::own});
  return send(state::logout, own_tag_ + " LOGOUT");
}

// --- responses --------------------------------------------------------------------------------

imap_machine::literal_use imap_machine::on_literal(std::string_view line) {
  if (!announces_body(line)) return literal_use::collect;
  // The awaited body, unless the line names another UID before its literal.
  if (state_ != state::command || own_kind_ != command_kind::body) return literal_use::discard;
  std::string error;
  std::string head(line.substr(0, line.rfind('{')));
  head += "NIL)";
  auto r = parse_imap_response(head, error);
  if (r && r->uid && *r->uid != own_uid_) return literal_use::discard;
  return literal_use::stream;
}

void imap_machine::fetch_data(const imap_response& r) {
  if (state_ != state::command) return;
  if (own_kind_ == command_kind::list && r.uid && r.size && *r.uid >= listing_from_)
    listing_.push_back({*r.uid, *r.size});
  if (own_kind_ == command_kind::headers && r.uid && r.size && r.header)
    headers_.push_back({*r.uid, *r.size, *r.header});
  if (own_kind_ == command_kind::body && r.body && r.uid.value_or(own_uid_) == own_uid_)
    found_ = true;
}

imap_machine::action imap_machine::untagged(const imap_response& r) {
  if (r.status == imap_status::bye) {
    bye_ = r.text;  // the connection ends next: its failure carries this text
    return read();
  }
  if (r.name == "CAPABILITY") {
    caps_ = parse_imap_capabilities(r.words);
    have_caps_ = true;
  } else if (r.name == "ENABLED") {
    for (const auto& w : r.words) {
      if (w == "QRESYNC") qresync_ = true;
      if (w == "CONDSTORE") condstore_ = true;
    }
  } else if (r.name == "EXISTS") {
    folder_.exists = r.number;
    if (state_ == state::idling && r.number > idle_exists_) {
      new_mail_ = true;
      return send(state::idle_done, "DONE");
    }
  } else if (r.name == "EXPUNGE") {
    if (folder_.exists > 0) --folder_.exists;
    if (idle_exists_ > 0) --idle_exists_;
  } else if (r.name == "FETCH") {
    fetch_data(r);
    if (found_ && own_kind_ == command_kind::body && state_ == state::command) {
      // The body is here: the operation is done. Servers answer pipelined FETCHes with all
      // their data first and the tagged OKs after, so the command's OK is read later, with
      // the answers of the commands sent before the next one.
      for (auto& p : pending_)
        if (p.tag == own_tag_) p.what = op::body_ahead;
      return finish({});
    }
  } else if (r.name == "VANISHED" && r.earlier) {
    if (auto uids = parse_uid_set(r.uid_set))
      folder_.vanished.insert(folder_.vanished.end(), uids->begin(), uids->end());
  } else if (r.name == "VANISHED") {
    // With QRESYNC enabled, expunges are announced so instead of EXPUNGE (RFC 7162 §3.2.10).
    const auto n = static_cast<std::uint32_t>(
        parse_uid_set(r.uid_set).value_or(std::vector<std::uint32_t>{}).size());
    folder_.exists -= std::min(folder_.exists, n);
    idle_exists_ -= std::min(idle_exists_, n);
  } else if (r.status == imap_status::ok && own_kind_ == command_kind::select &&
             state_ == state::command) {
    if (r.code == "UIDVALIDITY")
      folder_.uidvalidity =
          static_cast<std::uint32_t>(std::strtoul(r.code_arg.c_str(), nullptr, 10));
    if (r.code == "UIDNEXT")
      folder_.uidnext = static_cast<std::uint32_t>(std::strtoul(r.code_arg.c_str(), nullptr, 10));
    if (r.code == "HIGHESTMODSEQ")
      folder_.highest_modseq = std::strtoull(r.code_arg.c_str(), nullptr, 10);
    if (r.code == "NOMODSEQ") folder_.highest_modseq.reset();
  }
  if (state_ == state::idling) {
    action a;
    a.what = kind::idle_wait;
    return a;
  }
  return read();
}

imap_machine::action imap_machine::on_response(const imap_response& r) {
  switch (state_) {
    case state::greeting: return after_greeting(r);
    case state::idle:
    case state::tls_first:
    case state::preamble:
    case state::tls:
    case state::password:
    case state::broken:
    case state::ready:
      if (r.what == imap_response::kind::untagged) return untagged(r);
      return fail(failure_kind::protocol,
                  std::string("a response where none was expected (") + to_string(state_) + ")");
    default: break;
  }
  if (r.what == imap_response::kind::continuation) {
    if (state_ == state::authenticate && password_) {
      conf::secret response(password_->reveal());
      password_.reset();
      return send(state::authenticate, response.reveal(), true);
    }
    if (state_ == state::idle_start) {
      state_ = state::idling;
      action a;
      a.what = kind::idle_wait;
      return a;
    }
    return fail(failure_kind::protocol, "a continuation request where none was expected");
  }
  if (r.what == imap_response::kind::untagged) return untagged(r);
  return tagged(r);
}

imap_machine::action imap_machine::tagged(const imap_response& r) {
  switch (state_) {
    case state::capability:
    case state::capability_after:
      if (r.status != imap_status::ok)
        return end_session({failure_kind::protocol, r.text, "CAPABILITY refused"});
      if (state_ == state::capability_after) return after_capabilities();
      return login();
    case state::authenticate:
    case state::login: return after_login(r);
    case state::enable: return finish({});  // a refused ENABLE only costs the extensions
    default: break;
  }
  if (pending_.empty() || pending_.front().tag != r.tag)
    return fail(failure_kind::protocol, "a tagged response out of order (" + r.tag + ")");
  const pending p = pending_.front();
  pending_.pop_front();
  if (p.what == op::own) return own_done(r);
  return background_done(p, r);
}

imap_machine::action imap_machine::background_done(const pending& p, const imap_response& r) {
  action a = read();
  if (state_ == state::idling) a.what = kind::idle_wait;
  if (p.what == op::body_ahead) return a;  // asked for ahead, no longer wanted
  if (p.what == op::change && r.status == imap_status::ok) {
    if (p.counts_expunge) expunged_ += p.count;
    if (p.counts_move) moved_ += p.count;
  }
  if (p.what == op::change && r.status != imap_status::ok) {
    ++refusals_;
    a.refused.emplace(p.command, std::string(to_string(r.status)) + " " +
                                     (r.code.empty() ? "" : "[" + r.code + "] ") + r.text);
  }
  return a;
}

imap_machine::action imap_machine::own_done(const imap_response& r) {
  const std::string said = (r.code.empty() ? "" : "[" + r.code + "] ") + r.text;
  if (state_ == state::logout) {
    action a = finish({}, state::broken);
    a.close = true;
    return a;
  }
  if (state_ == state::idle_start || state_ == state::idling || state_ == state::idle_done) {
    if (r.status != imap_status::ok)
      return finish({failure_kind::rejected_temporary, said, "IDLE refused"});
    return finish({});
  }
  if (r.status == imap_status::bad)
    return fail(failure_kind::protocol, "the server called our command malformed", said);
  if (r.status == imap_status::no) {
    const bool temporary = r.code != "NONEXISTENT" && r.code != "TRYCREATE" && r.code != "NOPERM";
    const char* what = own_kind_ == command_kind::select ? "SELECT refused"
                       : own_kind_ == command_kind::body ? "UID FETCH refused"
                                                         : "command refused";
    return finish({temporary && own_kind_ != command_kind::select
                       ? failure_kind::rejected_temporary
                       : failure_kind::rejected_permanent,
                   said, what});
  }
  if (own_kind_ == command_kind::select) {
    folder_.read_only = r.code == "READ-ONLY";
    if (folder_.uidvalidity == 0)
      return fail(failure_kind::protocol, "SELECT sent no UIDVALIDITY (RFC 3501 §6.3.1)");
  }
  return finish({});
}

}  // namespace postern::fetch
