#include "fetch_config.hpp"

#include "secret.hpp"
#include "table_reader.hpp"

namespace postern::conf {

std::string delivery_target::to_string() const {
  switch (kind) {
    case target_kind::smtp:
    case target_kind::lmtp: return url ? url->to_string() : "";
    case target_kind::exec: {
      std::string out = "exec:";
      for (const auto& a : argv) out += (out.size() > 5 ? " " : "") + a;
      return out;
    }
    case target_kind::maildir: return "maildir:" + path;
    case target_kind::stdout_mbox: return "-";
  }
  return "?";
}

std::optional<delivery_target> parse_target(const std::string& text, std::string* error) {
  delivery_target t;
  auto fail = [&](std::string message) -> std::optional<delivery_target> {
    if (error) *error = std::move(message);
    return std::nullopt;
  };
  if (text == "-") {
    t.kind = target_kind::stdout_mbox;
    return t;
  }
  if (text.starts_with("maildir:")) {
    t.kind = target_kind::maildir;
    t.path = text.substr(8);
    if (t.path.empty() || t.path.front() != '/')
      return fail("\"" + text + "\": a Maildir needs an absolute path (maildir:/var/mail/x)");
    return t;
  }
  if (text.starts_with("exec:")) {
    t.kind = target_kind::exec;
    // Split on spaces: an argument cannot contain one (wrap such a command in a script).
    std::string word;
    for (char c : text.substr(5)) {
      if (c == ' ') {
        if (!word.empty()) t.argv.push_back(word);
        word.clear();
      } else {
        word += c;
      }
    }
    if (!word.empty()) t.argv.push_back(word);
    if (t.argv.empty() || t.argv.front().front() != '/')
      return fail("\"" + text + "\": exec needs an absolute program path (exec:/usr/sbin/x ...)");
    return t;
  }
  const std::string not_a_target =
      "\"" + text +
      "\" is not a delivery target (smtp://, smtps://, smtp+starttls://, lmtp://, lmtp:/path, "
      "exec:/path, maildir:/path or -)";
  const std::string scheme = text.substr(0, text.find(':'));
  if (scheme != "smtp" && scheme != "smtps" && scheme != "smtp+starttls" && scheme != "lmtp")
    return fail(not_a_target);
  std::string message;
  auto url = parse_endpoint(text, &message);
  if (!url) return fail(message);
  if (url->protocol == app_protocol::lmtp) {
    t.kind = target_kind::lmtp;
  } else if (url->protocol == app_protocol::smtp) {
    t.kind = target_kind::smtp;
  } else {
    return fail(not_a_target);
  }
  t.url = url;
  return t;
}

namespace {

/// What would make a valid target fail at every message: an exec: program that is missing
/// or not executable.
std::string target_problem(const delivery_target& t) {
  if (t.kind == target_kind::exec) return check_program(t.argv.front());
  return {};
}

void read_timeouts(table_reader& parent, fetch_timeouts& t) {
  read_timeouts_table(parent, {{"connect", &t.connect},
                               {"handshake", &t.handshake},
                               {"command", &t.command},
                               {"retrieve", &t.retrieve},
                               {"message", &t.message},
                               {"deliver", &t.deliver},
                               {"password_command", &t.password_command},
                               {"idle", &t.idle}});
  if (t.idle > std::chrono::minutes(29))
    parent.error("timeouts",
                 "idle: at most 29m (RFC 2177: servers may drop an IDLE of 30 "
                 "minutes as inactive)");
}

void read_delivery(table_reader& parent, mailbox& d) {
  d.address = "(delivery target)";
  const toml::table* table = parent.get_table("delivery");
  if (!table) return;
  table_reader r(*table, "delivery", parent.file(), parent.diags());
  read_client_credentials(r, d);
  r.finish();
}

/// The main delivery target (`deliver`), with what is wrong or risky about it.
void read_deliver(table_reader& r, fetch_config& c) {
  auto v = r.get_string("deliver");
  if (!v) return;
  std::string message;
  c.deliver = parse_target(*v, &message);
  if (!c.deliver)
    r.error("deliver", message);
  else if (auto problem = target_problem(*c.deliver); !problem.empty())
    r.error("deliver", problem);
  else if (c.deliver->url && !port_scheme_advice(*c.deliver->url).empty())
    r.warning("deliver", "\"" + *v + "\": " + port_scheme_advice(*c.deliver->url));
}

void read_audit(table_reader& r, fetch_config& c, diagnostics& diags) {
  const toml::table* audit = r.get_table("audit");
  if (!audit) return;
  table_reader ar(*audit, "audit", c.file, diags);
  if (auto v = ar.get_string("file")) {
    c.audit_file = resolve_path(c.file, *v);
    if (auto problem = check_appendable(c.audit_file); !problem.empty()) ar.error("file", problem);
  }
  ar.finish();
}

/// A login must not cross the network in cleartext without an explicit opt-in (mail to the
/// office's own server on port 25 without TLS is common; its password is another matter).
std::string cleartext_login(const fetch_config& c, const delivery_target& t) {
  if (c.delivery.login.empty() || !t.url || t.url->tls != tls_mode::none ||
      t.url->addr.is_local() || c.delivery.allow_cleartext)
    return "";
  return "[delivery] login would cross the network in cleartext to " + t.url->addr.to_string() +
         ": use smtps:// or smtp+starttls://, or set allow_cleartext = true in [delivery] if the "
         "network in between is trusted";
}

/// Every mailbox that is fetched needs a POP3 or IMAP endpoint and somewhere to deliver; its own
/// target is checked as the main one is. `deliver_set`: fetch.toml names a target.
void check_fetched_mailboxes(const fetch_config& c, bool deliver_set, diagnostics& diags) {
  const std::string& file = c.registry.file;
  for (const auto& m : c.registry.mailboxes) {
    if (!m.fetch) continue;
    if (!m.pop3 && !m.imap)
      diags.add({file, m.line, 1, "mailbox",
                 m.address + " is fetched but has no pop3 or imap endpoint: set one, or "
                             "fetch = false"});
    if (m.deliver.empty() && !deliver_set)
      diags.add({file, m.line, 1, "mailbox",
                 m.address + " has no delivery target: set deliver in fetch.toml or here"});
    if (m.deliver.empty()) continue;
    std::string message;
    auto own = parse_target(m.deliver, &message);
    if (!own) {
      diags.add({file, m.line, 1, "mailbox.deliver", message});
      continue;
    }
    for (const std::string& problem : {target_problem(*own), cleartext_login(c, *own)})
      if (!problem.empty()) diags.add({file, m.line, 1, "mailbox.deliver", problem});
  }
}

}  // namespace

std::optional<fetch_config> load_fetch_config(const std::string& file, diagnostics& diags) {
  auto root = parse_toml_file(file, diags);
  if (!root) return std::nullopt;
  fetch_config c;
  c.file = file;
  table_reader r(*root, "", file, diags);
  c.mailboxes_file = resolve_path(file, r.get_string("mailboxes").value_or("mailboxes.toml"));
  read_deliver(r, c);
  if (auto v = r.get_string("state_dir")) c.state_dir = resolve_path(file, *v);
  if (auto v = r.get_duration("interval")) c.interval = *v;
  if (auto v = r.get_bool("keep")) c.keep = *v;
  if (auto v = r.get_duration("delete_after")) c.delete_after = *v;
  if (auto v = r.get_size("max_message_size")) c.max_message_size = *v;
  if (auto v = r.get_choice<oversize_action>(
          "oversize", {{"skip", oversize_action::skip}, {"deliver", oversize_action::deliver}}))
    c.oversize = *v;
  if (auto v = r.get_int("max_messages_per_run", 0, 10'000'000))
    c.max_messages_per_run = static_cast<std::uint32_t>(*v);
  if (auto v = r.get_int("concurrency", 1, 64)) c.concurrency = static_cast<std::uint32_t>(*v);
  read_timeouts(r, c.timeouts);
  read_delivery(r, c.delivery);
  read_audit(r, c, diags);
  r.finish();
  if (c.keep == false && c.delete_after)
    r.error("delete_after", "applies only with keep = true (without it, mail is deleted at once)");
  if (c.interval.count() <= 0 && r.has("interval")) r.error("interval", "must be longer than 0s");
  if (c.deliver)
    if (auto problem = cleartext_login(c, *c.deliver); !problem.empty())
      r.error("deliver", problem);
  diagnostics registry_diags;  // its own: the loader fails on any error already collected
  auto registry = load_mailbox_registry(c.mailboxes_file, registry_diags);
  for (const auto& d : registry_diags.items()) diags.add(d);
  for (const auto& d : registry_diags.warnings()) diags.warn(d);
  if (!registry) return std::nullopt;
  c.registry = *registry;
  if (c.keep == false)
    for (const auto& m : c.registry.mailboxes)
      if (m.fetch && m.pec)
        r.warning("keep", m.address +
                              " is a PEC mailbox: keep = false deletes each message from the "
                              "provider once it is delivered, and the provider's copy is the "
                              "legal record (keep = true with delete_after = \"30d\" or longer "
                              "keeps it for a while)");
  // Checked even when fetch.toml has errors: all of them are reported at once.
  check_fetched_mailboxes(c, c.deliver || r.has("deliver"), diags);
  if (!diags.empty()) return std::nullopt;
  return c;
}

}  // namespace postern::conf
