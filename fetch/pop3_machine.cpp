#include "pop3_machine.hpp"

#include <algorithm>

#include "forwarder/smtp/sasl.hpp"

namespace postern::fetch {

using kind = pop3_machine::action::kind;

const char* to_string(pop3_machine::state s) {
  using st = pop3_machine::state;
  switch (s) {
    case st::idle: return "idle";
    case st::tls_first: return "tls_first";
    case st::greeting: return "greeting";
    case st::capa: return "capa";
    case st::preamble: return "preamble";
    case st::tls: return "tls";
    case st::capa_again: return "capa_again";
    case st::password: return "password";
    case st::auth: return "auth";
    case st::user: return "user";
    case st::pass: return "pass";
    case st::ready: return "ready";
    case st::command: return "command";
    case st::retr: return "retr";
    case st::dele: return "dele";
    case st::quit: return "quit";
    case st::broken: return "broken";
  }
  return "?";
}

pop3_machine::pop3_machine(settings s) : settings_(std::move(s)) {}

std::uint32_t pop3_machine::pending_deletions() const {
  return static_cast<std::uint32_t>(
      std::count_if(pending_.begin(), pending_.end(), [](const pending& p) { return !p.retr; }));
}

pop3_machine::action pop3_machine::send(state next, std::string line, bool sensitive) {
  state_ = next;
  action a;
  a.what = kind::send;
  a.bytes = std::move(line) + "\r\n";
  a.sensitive = sensitive;
  return a;
}

pop3_machine::action pop3_machine::read_status(bool flush_first) {
  action a;
  a.what = kind::read_status;
  a.flush_first = flush_first;
  return a;
}

pop3_machine::action pop3_machine::finish(pop3_result r, state next) {
  state_ = next;
  action a;
  a.result = std::move(r);
  return a;
}

pop3_machine::action pop3_machine::end_session(pop3_result r) {
  password_.reset();
  pending_.clear();
  action a = finish(std::move(r), state::broken);
  a.close = true;
  return a;
}

pop3_machine::action pop3_machine::fail(failure_kind k, std::string detail) {
  return end_session({k, {}, std::move(detail)});
}

pop3_machine::action pop3_machine::unless_ready(const char* what) {
  return fail(failure_kind::protocol,
              std::string(what) + " while the session is " + to_string(state_) + ", not ready");
}

pop3_machine::action pop3_machine::on_io_failure(pop3_result r) {
  return fail(r.kind, std::move(r.detail));
}

// --- opening: TLS, greeting, CAPA, STLS, login ------------------------------------------------

pop3_machine::action pop3_machine::open() {
  caps_ = {};
  pending_.clear();
  if (settings_.implicit_tls) {
    state_ = state::tls_first;
    action a;
    a.what = kind::start_tls;
    return a;
  }
  if (settings_.stls) {
    dialogue_.emplace(conf::app_protocol::pop3, std::string());
    state_ = state::preamble;
    action a = read_status();
    a.line = true;
    return a;
  }
  state_ = state::greeting;
  return read_status();
}

pop3_machine::action pop3_machine::on_line(std::string_view line, bool more_input) {
  if (state_ != state::preamble || !dialogue_)
    return fail(failure_kind::protocol, "a dialogue line where none was expected");
  return dialogue_step(dialogue_->on_line(line, more_input));
}

pop3_machine::action pop3_machine::dialogue_step(net::starttls_dialogue::step step) {
  if (auto a = net::client_action<action>(step, kind::send, kind::read_status, kind::start_tls)) {
    if (a->what == kind::start_tls) {
      state_ = state::tls;
      dialogue_.reset();
    }
    return *a;
  }
  dialogue_.reset();
  return end_session(dialogue_failure(step, settings_.server));
}

pop3_machine::action pop3_machine::on_tls(const pop3_result& r) {
  if (!r.ok()) return fail(r.kind, r.detail);
  if (state_ == state::tls_first) {
    state_ = state::greeting;
    return read_status();
  }
  caps_ = {};
  return send(state::capa_again, "CAPA");
}

pop3_machine::action pop3_machine::after_capa(const pop3_status& s) {
  if (!s.ok) return on_capa({});  // an old server without CAPA: no capabilities
  action a;
  a.what = kind::read_lines;
  a.capa = true;
  return a;
}

pop3_machine::action pop3_machine::on_capa(const std::vector<std::string>& lines) {
  caps_ = parse_capa(lines);
  return login();
}

pop3_machine::action pop3_machine::login() {
  state_ = state::password;
  action a;
  a.what = kind::password;
  return a;
}

pop3_machine::action pop3_machine::on_password(std::optional<conf::secret> password,
                                               const std::string& error) {
  if (!password) return fail(failure_kind::auth, error.empty() ? "no password" : error);
  plain_ = std::find(caps_.sasl.begin(), caps_.sasl.end(), "PLAIN") != caps_.sasl.end();
  if (plain_) {
    conf::secret response = smtp::plain_response(settings_.login, *password);
    return send(state::auth, "AUTH PLAIN " + response.reveal(), true);
  }
  password_ = std::move(password);
  return send(state::user, "USER " + settings_.login);
}

pop3_machine::action pop3_machine::login_status(const pop3_status& s) {
  if (s.ok && state_ == state::user) {
    conf::secret pass(password_->reveal());
    password_.reset();
    return send(state::pass, "PASS " + pass.reveal(), true);
  }
  password_.reset();
  if (s.ok) return finish({});
  return end_session(
      {failure_kind::auth, s.text,
       std::string(plain_ ? "AUTH PLAIN" : "USER/PASS") + " as " + settings_.login + " refused"});
}

// --- the transaction state --------------------------------------------------------------------

pop3_machine::action pop3_machine::listing(std::string command, std::string refused) {
  if (state_ != state::ready) return unless_ready("a listing");
  refused_ = std::move(refused);
  return send(state::command, std::move(command));
}

pop3_machine::action pop3_machine::request_retr(std::uint32_t number) {
  if (!caps_.pipelining || broken()) return finish({}, state_);
  pending_.push_back({true, number});
  action a;
  a.what = kind::queue;
  a.bytes = "RETR " + std::to_string(number) + "\r\n";
  return a;
}

pop3_machine::action pop3_machine::retr(std::uint32_t number) {
  const bool requested = std::any_of(pending_.begin(), pending_.end(), [number](const pending& p) {
    return p.retr && p.number == number;
  });
  if (state_ != state::ready) return unless_ready("RETR");
  waiting_for_ = number;
  if (!requested) return send(state::retr, "RETR " + std::to_string(number));
  state_ = state::retr;
  return read_status(true);
}

pop3_machine::action pop3_machine::dele(std::uint32_t number) {
  if (state_ != state::ready) return unless_ready("DELE");
  if (caps_.pipelining) {
    pending_.push_back({false, number});
    action a;
    a.what = kind::queue;
    a.bytes = "DELE " + std::to_string(number) + "\r\n";
    return a;
  }
  waiting_for_ = number;
  return send(state::dele, "DELE " + std::to_string(number));
}

pop3_machine::action pop3_machine::quit() { return send(state::quit, "QUIT"); }

pop3_machine::action pop3_machine::on_status(const std::optional<pop3_status>& s) {
  if (!s) return fail(failure_kind::protocol, "not a POP3 server: unexpected reply");
  const bool ours_is_next =
      pending_.empty() || (state_ == state::retr && waiting_for_ && pending_.front().retr &&
                           pending_.front().number == *waiting_for_);
  if (!ours_is_next) return pending_status(*s);
  if (!pending_.empty()) pending_.pop_front();  // retr(): the RETR asked for ahead
  return own_status(*s);
}

pop3_machine::action pop3_machine::pending_status(const pop3_status& s) {
  const pending p = pending_.front();
  pending_.pop_front();
  if (p.retr && s.ok) {
    // Asked for ahead but no longer wanted (the run is stopping): read it to its end.
    pending_body_ = true;
    action a;
    a.what = kind::read_body;
    a.number = p.number;
    a.discard = true;
    return a;
  }
  action a = read_status();  // our own command's answer, or the next pipelined one
  if (!p.retr && s.ok) ++deletions_;
  if (!p.retr && !s.ok) a.refused_dele.emplace(p.number, s.text);
  return a;
}

pop3_machine::action pop3_machine::own_status(const pop3_status& s) {
  const pop3_result refused{failure_kind::rejected_permanent, s.text, {}};
  switch (state_) {
    case state::greeting:
      if (!s.ok) return end_session(refused);
      return send(state::capa, "CAPA");
    case state::capa:
    case state::capa_again: return after_capa(s);
    case state::auth:
    case state::user:
    case state::pass: return login_status(s);
    case state::command: {
      if (!s.ok) return finish({refused.kind, s.text, refused_});
      action a;
      a.what = kind::read_lines;
      return a;
    }
    case state::retr: {
      if (!s.ok) return finish(refused);
      action a;
      a.what = kind::read_body;
      a.number = waiting_for_.value_or(0);
      return a;
    }
    case state::dele: {
      action a = finish(s.ok ? pop3_result{} : refused);
      if (s.ok) ++deletions_;
      if (!s.ok) a.refused_dele.emplace(waiting_for_.value_or(0), s.text);
      waiting_for_.reset();
      return a;
    }
    case state::quit: {
      action a = finish(s.ok ? pop3_result{} : refused, state::broken);
      a.close = true;
      return a;
    }
    default:
      return fail(failure_kind::protocol,
                  std::string("a status line where none was expected (") + to_string(state_) + ")");
  }
}

pop3_machine::action pop3_machine::on_lines_done() { return finish({}); }

pop3_machine::action pop3_machine::on_body_done() {
  if (pending_body_) {
    pending_body_ = false;
    return read_status();
  }
  waiting_for_.reset();
  return finish({});
}

}  // namespace postern::fetch
