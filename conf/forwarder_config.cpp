#include "forwarder_config.hpp"

#include <unistd.h>

#include <climits>

#include "secret.hpp"
#include "table_reader.hpp"
#include "tls_files.hpp"

namespace postern::conf {

namespace {

void read_listen(table_reader& r, forwarder_config& c) {
  std::vector<std::string> list = {"127.0.0.1:10025"};
  if (auto v = r.get_string_list("listen")) list = *v;
  if (list.empty()) r.error("listen", "needs at least one address");
  for (const auto& text : list) {
    std::string message;
    if (auto a = parse_address(text, true, &message)) {
      c.listen.push_back(*a);
    } else {
      r.error("listen", message);
    }
  }
}

void read_allow(table_reader& r, forwarder_config& c) {
  std::vector<std::string> list = {"127.0.0.0/8", "::1/128"};
  if (auto v = r.get_string_list("allow")) list = *v;
  for (const auto& text : list) {
    std::string message;
    if (auto range = parse_cidr(text, &message))
      c.allow.push_back(*range);
    else
      r.error("allow", message);
  }
}

void read_timeouts(table_reader& parent, forwarder_timeouts& t) {
  read_timeouts_table(parent, {{"command", &t.command},
                               {"data", &t.data},
                               {"connect", &t.connect},
                               {"handshake", &t.handshake},
                               {"reply", &t.reply},
                               {"final_reply", &t.final_reply},
                               {"upstream_idle", &t.upstream_idle},
                               {"password_command", &t.password_command}});
}

void read_default(table_reader& parent, forwarder_config& c) {
  const toml::table* table = parent.get_table("default");
  if (!table) return;
  table_reader r(*table, "default", parent.file(), parent.diags());
  if (auto v = r.get_choice<default_action>(
          "action", {{"reject", default_action::reject}, {"relay", default_action::relay}}))
    c.fallback = *v;
  mailbox relay;
  relay.address = "(default relay)";
  if (auto url = r.get_string("relay")) {
    std::string message;
    relay.smtp = parse_endpoint(*url, &message);
    if (!relay.smtp)
      r.error("relay", message);
    else if (relay.smtp->protocol != app_protocol::smtp)
      r.error("relay", "\"" + *url + "\" is not an SMTP URL (smtps://, smtp+starttls://, smtp://)");
    else if (auto advice = port_scheme_advice(*relay.smtp); !advice.empty())
      r.warning("relay", "\"" + *url + "\": " + advice);
  }
  read_client_credentials(r, relay);
  r.finish();
  if (c.fallback == default_action::relay) {
    if (!relay.smtp && !r.has("relay"))
      r.error("action",
              "action = \"relay\" needs relay = \"smtp+starttls://host:587\" (or smtps://)");
    if (relay.smtp && relay.smtp->tls == tls_mode::none && !relay.smtp->addr.is_local() &&
        !relay.allow_cleartext)
      r.error("relay", "cleartext relay to " + relay.smtp->addr.to_string() +
                           " is not on this host; set allow_cleartext = true if the network in "
                           "between is trusted");
    c.smarthost = std::move(relay);
  } else if (r.has("relay")) {
    r.error("relay", "applies only to action = \"relay\"");
  }
}

void read_pec(table_reader& parent, forwarder_config& c) {
  const toml::table* table = parent.get_table("pec");
  if (!table) return;
  table_reader r(*table, "pec", parent.file(), parent.diags());
  if (auto v = r.get_choice<bcc_policy>(
          "bcc", {{"reject", bcc_policy::reject}, {"split", bcc_policy::split}}))
    c.bcc = *v;
  if (auto v = r.get_choice<std::string>(
          "receipt_type",
          {{"completa", "completa"}, {"breve", "breve"}, {"sintetica", "sintetica"}}))
    c.receipt_type = *v;
  r.finish();
}

void read_audit(table_reader& parent, forwarder_config& c) {
  const toml::table* table = parent.get_table("audit");
  if (!table) return;
  table_reader r(*table, "audit", parent.file(), parent.diags());
  if (auto v = r.get_string("file")) {
    c.audit_file = resolve_path(parent.file(), *v);
    if (auto problem = check_appendable(c.audit_file); !problem.empty()) r.error("file", problem);
  }
  r.finish();
}

}  // namespace

const char* to_string(sender_match m) {
  switch (m) {
    case sender_match::envelope: return "envelope";
    case sender_match::header: return "header";
    case sender_match::envelope_and_header: return "envelope+header";
  }
  return "?";
}

std::optional<forwarder_config> load_forwarder_config(const std::string& file, diagnostics& diags) {
  auto root = parse_toml_file(file, diags);
  if (!root) return std::nullopt;
  forwarder_config c;
  c.file = file;
  table_reader r(*root, "", file, diags);
  read_listen(r, c);
  if (auto v = r.get_string("hostname")) c.hostname = *v;
  if (c.hostname.empty()) {
    char name[HOST_NAME_MAX + 1] = {};
    ::gethostname(name, sizeof name - 1);
    c.hostname = name[0] ? name : "localhost";
  }
  read_allow(r, c);
  c.mailboxes_file = resolve_path(file, r.get_string("mailboxes").value_or("mailboxes.toml"));
  if (auto v = r.get_choice<sender_match>("match",
                                          {{"envelope", sender_match::envelope},
                                           {"header", sender_match::header},
                                           {"envelope+header", sender_match::envelope_and_header}}))
    c.match = *v;
  if (auto v = r.get_size("max_message_size")) c.max_message_size = *v;
  if (auto v = r.get_int("max_recipients", 1, 100'000))
    c.max_recipients = static_cast<std::uint32_t>(*v);
  if (auto v = r.get_int("max_sessions", 1, 100'000))
    c.max_sessions = static_cast<std::uint32_t>(*v);
  if (auto v = r.get_int("max_sessions_per_address", 0, 100'000))
    c.max_sessions_per_address = static_cast<std::uint32_t>(*v);
  if (auto v = r.get_size("min_data_rate")) {
    if (*v == 0)
      r.error("min_data_rate", "must be at least 1 byte per second");
    else
      c.min_data_rate = *v;
  }
  if (auto v = r.get_string("tls_cert_file")) c.tls_cert_file = resolve_path(file, *v);
  if (auto v = r.get_string("tls_key_file")) c.tls_key_file = resolve_path(file, *v);
  if (c.tls_cert_file.empty() != c.tls_key_file.empty())
    r.error(c.tls_cert_file.empty() ? "tls_cert_file" : "tls_key_file",
            "STARTTLS needs both tls_cert_file and tls_key_file");
  bool cert_ok = false;
  if (!c.tls_cert_file.empty())
    cert_ok = check_cert_file(r, "tls_cert_file", c.tls_cert_file, true);
  if (!c.tls_key_file.empty())
    check_key_file(r, "tls_key_file", c.tls_key_file, cert_ok ? c.tls_cert_file : std::string());
  if (auto v = r.get_string("auth_users_file")) {
    c.auth_users_file = resolve_path(file, *v);
    if (auto problem = check_private_file(c.auth_users_file); !problem.empty())
      r.error("auth_users_file", problem);
  }
  read_timeouts(r, c.timeouts);
  // Without client AUTH, whoever is in `allow` sends as every mailbox.
  if (c.auth_users_file.empty()) {
    for (const auto& range : c.allow)
      if (range.prefix == 0)
        r.warning("allow", range.to_string() +
                               " lets every address relay through your mailboxes without AUTH: "
                               "anyone who reaches this port sends as them (list your mail "
                               "servers' networks, or set auth_users_file)");
      else if (!range.is_private())
        r.warning("allow", range.to_string() +
                               " reaches beyond private networks and relays without AUTH: every "
                               "host in it sends as your mailboxes (list only your mail "
                               "servers, or set auth_users_file)");
  }
  read_default(r, c);
  read_pec(r, c);
  read_audit(r, c);
  r.finish();
  if (auto registry = load_mailbox_registry(c.mailboxes_file, diags)) c.registry = *registry;
  if (!diags.empty()) return std::nullopt;
  return c;
}

}  // namespace postern::conf
