#include "client_machine.hpp"

namespace postern::smtp {

using kind = client_machine::action::kind;

const char* to_string(failure_kind k) {
  switch (k) {
    case failure_kind::none: return "ok";
    case failure_kind::connection: return "connection";
    case failure_kind::tls: return "tls";
    case failure_kind::protocol: return "protocol";
    case failure_kind::auth: return "auth";
    case failure_kind::credentials: return "credentials";
    case failure_kind::rejected_temporary: return "rejected_temporary";
    case failure_kind::rejected_permanent: return "rejected_permanent";
    case failure_kind::timeout: return "timeout";
  }
  return "?";
}

const char* to_string(client_machine::state s) {
  using st = client_machine::state;
  switch (s) {
    case st::idle: return "idle";
    case st::tls_first: return "tls_first";
    case st::greeting: return "greeting";
    case st::ehlo: return "ehlo";
    case st::preamble: return "preamble";
    case st::tls: return "tls";
    case st::ehlo_again: return "ehlo_again";
    case st::password: return "password";
    case st::auth: return "auth";
    case st::auth_cancel: return "auth_cancel";
    case st::ready: return "ready";
    case st::mail: return "mail";
    case st::rcpt: return "rcpt";
    case st::data: return "data";
    case st::pipelined: return "pipelined";
    case st::empty_message: return "empty_message";
    case st::body: return "body";
    case st::end_of_data: return "end_of_data";
    case st::rset: return "rset";
    case st::quit: return "quit";
    case st::broken: return "broken";
  }
  return "?";
}

failure_kind classify(const reply& r) {
  if (r.positive()) return failure_kind::none;
  return r.transient() ? failure_kind::rejected_temporary : failure_kind::rejected_permanent;
}

client_machine::client_machine(settings s) : settings_(std::move(s)) {}

client_machine::action client_machine::send(state next, std::string line, bool sensitive,
                                            reply_wait wait) {
  state_ = next;
  action a;
  a.what = kind::send;
  a.bytes = std::move(line);
  a.bytes += "\r\n";
  a.sensitive = sensitive;
  a.wait = wait;
  return a;
}

client_machine::action client_machine::finish(client_result r, state next) {
  state_ = next;
  action a;
  a.result = std::move(r);
  return a;
}

client_machine::action client_machine::end_session(client_result r) {
  password_.reset();
  in_transaction_ = false;
  action a = finish(std::move(r), state::broken);
  a.close = true;
  return a;
}

client_machine::action client_machine::fail(failure_kind k, std::string detail) {
  return end_session({k, {}, std::move(detail)});
}

client_machine::action client_machine::unless_ready(const char* what) {
  return fail(failure_kind::protocol,
              std::string(what) + " while the session is " + to_string(state_) + ", not ready");
}

client_machine::action client_machine::on_io_failure(client_result r) {
  return fail(r.kind, std::move(r.detail));
}

// --- opening: TLS, greeting, EHLO, STARTTLS, AUTH -------------------------------------------

client_machine::action client_machine::open() {
  caps_ = {};
  auth_used_.clear();
  in_transaction_ = false;
  if (settings_.implicit_tls) {
    state_ = state::tls_first;
    action a;
    a.what = kind::start_tls;
    return a;
  }
  action a;
  a.what = kind::read;
  if (settings_.starttls) {
    dialogue_.emplace(settings_.lmtp ? conf::app_protocol::lmtp : conf::app_protocol::smtp,
                      settings_.helo_name);
    state_ = state::preamble;
    a.line = true;
    return a;
  }
  state_ = state::greeting;
  return a;
}

client_machine::action client_machine::on_line(std::string_view line, bool more_input) {
  if (state_ != state::preamble || !dialogue_)
    return fail(failure_kind::protocol, "a dialogue line where none was expected");
  return dialogue_step(dialogue_->on_line(line, more_input));
}

client_machine::action client_machine::dialogue_step(net::starttls_dialogue::step step) {
  using dl = net::starttls_dialogue;
  if (auto a = net::client_action<action>(step, kind::send, kind::read, kind::start_tls)) {
    if (a->what == kind::start_tls) {
      state_ = state::tls;
      dialogue_.reset();
    }
    return *a;
  }
  dialogue_.reset();
  reply r;
  r.code = step.code;
  if (step.server_line.size() > 4) r.lines.push_back(step.server_line.substr(4));
  switch (step.why) {
    case dl::failure::refused: return end_session({classify(r), r, std::move(step.data)});
    case dl::failure::starttls_refused:
      return end_session({failure_kind::tls, r, std::move(step.data)});
    case dl::failure::not_offered:
      return fail(failure_kind::tls, settings_.server + ": " + step.data);
    default: return fail(failure_kind::protocol, step.explain());
  }
}

client_machine::action client_machine::on_tls(const client_result& r) {
  if (!r.ok()) return fail(r.kind, r.detail);
  if (state_ == state::tls_first) {
    state_ = state::greeting;
    action a;
    a.what = kind::read;
    return a;
  }
  caps_ = {};  // RFC 3207 §4.2: what the server said in cleartext no longer counts
  return send(state::ehlo_again, (settings_.lmtp ? "LHLO " : "EHLO ") + settings_.helo_name);
}

client_machine::action client_machine::after_greeting(const reply& r) {
  if (!r.positive()) return end_session({classify(r), r, "greeting refused"});
  return send(state::ehlo, (settings_.lmtp ? "LHLO " : "EHLO ") + settings_.helo_name);
}

client_machine::action client_machine::after_ehlo(const reply& r) {
  if (!r.positive()) return end_session({classify(r), r, "EHLO refused"});
  caps_ = parse_ehlo(r);
  if (!settings_.login.empty()) return start_auth();
  return logged_in();
}

client_machine::action client_machine::start_auth() {
  mechanism_ = choose_mechanism(caps_.auth);
  if (!mechanism_)
    return fail(failure_kind::auth, caps_.auth.empty()
                                        ? "the server offers no AUTH (login needs it)"
                                        : "no supported AUTH mechanism offered");
  auth_used_ = to_string(*mechanism_);
  state_ = state::password;
  action a;
  a.what = kind::password;
  return a;
}

client_machine::action client_machine::on_password(std::optional<conf::secret> password,
                                                   const std::string& error) {
  if (!password) return fail(failure_kind::credentials, error.empty() ? "no password" : error);
  password_ = std::move(password);
  auth_steps_ = 0;
  switch (*mechanism_) {
    case auth_mechanism::plain: {
      conf::secret response = plain_response(settings_.login, *password_);
      password_.reset();
      return send(state::auth, "AUTH PLAIN " + response.reveal(), true);
    }
    case auth_mechanism::login: return send(state::auth, "AUTH LOGIN");
    case auth_mechanism::cram_md5: return send(state::auth, "AUTH CRAM-MD5");
  }
  return fail(failure_kind::protocol, "unknown AUTH mechanism");
}

client_machine::action client_machine::auth_step(const reply& r) {
  if (r.code != 334 || !password_) return auth_outcome(r);
  ++auth_steps_;
  if (*mechanism_ == auth_mechanism::login && auth_steps_ == 1)
    return send(state::auth, base64_encode(settings_.login), true);
  if (*mechanism_ == auth_mechanism::login && auth_steps_ == 2) {
    conf::secret encoded(base64_encode(password_->reveal()));
    password_.reset();
    return send(state::auth, encoded.reveal(), true);
  }
  if (*mechanism_ == auth_mechanism::cram_md5 && auth_steps_ == 1) {
    auto response =
        cram_md5_response(settings_.login, *password_, r.lines.empty() ? "" : r.lines.front());
    password_.reset();
    if (!response) return fail(failure_kind::protocol, "malformed CRAM-MD5 challenge");
    return send(state::auth, response->reveal(), true);
  }
  return auth_outcome(r);
}

client_machine::action client_machine::auth_outcome(const reply& r) {
  password_.reset();
  // 235 is success (RFC 4954 §6); some servers (Postfix's smtp-sink) say 250, equally positive.
  if (r.positive() && r.code != 334) return logged_in();
  if (r.code == 334)  // a challenge we did not expect: cancel the exchange (RFC 4954 §4)
    return send(state::auth_cancel, "*");
  client_result out{classify(r), r,
                    std::string("AUTH ") + auth_used_ + " as " + settings_.login + " refused"};
  if (r.code != 454 && r.code != 421) out.kind = failure_kind::auth;
  return end_session(std::move(out));
}

client_machine::action client_machine::logged_in() { return finish({}, state::ready); }

// --- transactions -----------------------------------------------------------------------------

client_machine::action client_machine::mail(const std::string& path) {
  if (state_ != state::ready) return unless_ready("MAIL");
  in_transaction_ = true;
  return send(state::mail, "MAIL FROM:" + path);
}

client_machine::action client_machine::rcpt(const std::string& path) {
  if (state_ != state::ready && state_ != state::mail) return unless_ready("RCPT");
  return send(state::rcpt, "RCPT TO:" + path);
}

client_machine::action client_machine::data() {
  if (state_ != state::ready && state_ != state::rcpt) return unless_ready("DATA");
  return send(state::data, "DATA");
}

client_machine::action client_machine::envelope(const std::string& from, const std::string& to) {
  if (state_ != state::ready) return unless_ready("MAIL");
  if (!caps_.pipelining) {
    envelope_to_ = to;
    return mail(from);
  }
  in_transaction_ = true;
  pipelined_.clear();
  action a = send(state::pipelined, "MAIL FROM:" + from + "\r\nRCPT TO:" + to + "\r\nDATA");
  return a;
}

client_machine::action client_machine::data_reply(const reply& r) {
  client_result out{classify(r), r, {}};
  if (out.ok() && r.code != 354) {
    out.kind = failure_kind::protocol;
    out.detail = "DATA answered " + std::to_string(r.code) + " instead of 354";
  }
  const state next = out.ok() ? state::body : state::ready;
  return finish(std::move(out), next);
}

client_machine::action client_machine::pipelined_reply(const reply& r) {
  pipelined_.push_back(r);
  if (pipelined_.size() < 3) {
    action a;
    a.what = kind::read;
    return a;
  }
  const reply &m = pipelined_[0], &rc = pipelined_[1], &d = pipelined_[2];
  if (m.positive() && rc.positive()) return data_reply(d);
  first_refusal_ = m.positive() ? rc : m;
  // A server that starts DATA with no accepted recipient (RFC 2920 §3.1 says it must not):
  // end the empty message so the session stays in step.
  if (d.code == 354) return send(state::empty_message, ".");
  return finish({classify(first_refusal_), first_refusal_, {}}, state::ready);
}

client_machine::action client_machine::end_data() {
  if (state_ != state::body) return unless_ready("the end of the message");
  action a;
  a.what = kind::read;
  a.wait = reply_wait::final;
  state_ = state::end_of_data;
  return a;
}

client_machine::action client_machine::reset() {
  if (state_ != state::ready) return unless_ready("RSET");
  return send(state::rset, "RSET");
}

client_machine::action client_machine::quit() {
  return send(state::quit, "QUIT", false, reply_wait::quit);
}

client_machine::action client_machine::on_reply(const reply& r) {
  switch (state_) {
    case state::greeting: return after_greeting(r);
    case state::ehlo:
    case state::ehlo_again: return after_ehlo(r);
    case state::auth: return auth_step(r);
    case state::auth_cancel: return fail(failure_kind::protocol, "unexpected AUTH challenge");
    case state::mail:
      if (envelope_to_ && r.positive()) {
        std::string to = std::move(*envelope_to_);
        envelope_to_.reset();
        envelope_data_ = true;
        return rcpt(to);
      }
      envelope_to_.reset();
      return finish({classify(r), r, {}}, state::ready);
    case state::rcpt:
      if (envelope_data_ && r.positive()) {
        envelope_data_ = false;
        return data();
      }
      envelope_data_ = false;
      return finish({classify(r), r, {}}, state::ready);
    case state::data: return data_reply(r);
    case state::pipelined: return pipelined_reply(r);
    case state::empty_message:
      return finish({classify(first_refusal_), first_refusal_, {}}, state::ready);
    case state::end_of_data:
      in_transaction_ = false;
      return finish({classify(r), r, {}}, state::ready);
    case state::rset:
      if (r.positive()) in_transaction_ = false;
      return finish({classify(r), r, {}}, state::ready);
    case state::quit: return finish({classify(r), r, {}}, state::broken);
    default:
      return fail(failure_kind::protocol,
                  std::string("a reply where none was expected (") + to_string(state_) + ")");
  }
}

}  // namespace postern::smtp
