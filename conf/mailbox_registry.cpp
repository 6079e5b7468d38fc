#include "mailbox_registry.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <memory>

#include "table_reader.hpp"
#include "tls_files.hpp"

namespace postern::conf {

namespace {

constexpr std::uint64_t MB = 1000 * 1000;

bool valid_address(std::string_view a) {
  auto at = a.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == a.size()) return false;
  return std::none_of(a.begin(), a.end(), [](unsigned char c) {
    return c <= ' ' || c == '<' || c == '>' || c == ',' || c == 0x7f;
  });
}

std::optional<endpoint> read_endpoint(table_reader& r, std::string_view key, app_protocol want,
                                      std::string_view preset_url) {
  std::string url;
  if (auto v = r.get_string(key))
    url = *v;
  else
    url = preset_url;
  if (url.empty()) return std::nullopt;
  std::string message;
  auto e = parse_endpoint(url, &message);
  if (!e) {
    r.error(key, message);
    return std::nullopt;
  }
  if (e->protocol != want) {
    const char* schemes = want == app_protocol::smtp   ? "smtps://, smtp+starttls:// or smtp://"
                          : want == app_protocol::pop3 ? "pop3s://, pop3+starttls:// or pop3://"
                                                       : "imaps://, imap+starttls:// or imap://";
    r.error(key, "\"" + url + "\" is not " + (want == app_protocol::imap ? "an " : "a ") +
                     to_string(want) + " endpoint (use " + schemes + ")");
    return std::nullopt;
  }
  if (auto advice = port_scheme_advice(*e); !advice.empty() && r.has(key))
    r.warning(key, "\"" + url + "\": " + advice);
  return e;
}

void read_limits(table_reader& r, mailbox_limits& l) {
  if (auto v = r.get_size("max_message_size")) l.max_message_size = *v;
  if (auto v = r.get_bool("size_divided_by_recipients")) l.size_divided_by_recipients = *v;
  if (auto v = r.get_int("max_recipients", 0, 1'000'000))
    l.max_recipients = static_cast<std::uint32_t>(*v);
  if (auto v = r.get_int("messages_per_minute", 0, 1'000'000))
    l.messages_per_minute = static_cast<std::uint32_t>(*v);
}

/// password_command: an argv whose program exists and may be run (a typo fails every login,
/// at the first message, otherwise).
void read_password_command(table_reader& r, mailbox& m) {
  auto v = r.get_string_list("password_command");
  if (!v) return;
  m.password_command = *v;
  if (v->empty()) {
    r.error("password_command", "needs the program to run");
    return;
  }
  if (auto problem = check_program(v->front()); !problem.empty())
    r.error("password_command", problem);
}

bool file_is_private(const std::string& file) {
  struct stat st {};
  return ::stat(file.c_str(), &st) == 0 && (st.st_mode & 077) == 0;
}

void check_cleartext(table_reader& r, const mailbox& m, std::string_view key,
                     const std::optional<endpoint>& e) {
  if (e && e->tls == tls_mode::none && !e->addr.is_local() && !m.allow_cleartext)
    r.error(key, "cleartext " + e->to_string() +
                     " would send the password unencrypted; use the TLS scheme, or set "
                     "allow_cleartext = true if the network in between is trusted");
}

std::optional<imap_after> parse_after(std::string_view text) {
  imap_after a;
  if (text == "keep") return a;
  if (text == "seen") {
    a.what = imap_after::kind::seen;
    return a;
  }
  if (text == "delete") {
    a.what = imap_after::kind::remove;
    return a;
  }
  if (text.starts_with("move:") && text.size() > 5) {
    a.what = imap_after::kind::move;
    a.folder = std::string(text.substr(5));
    return a;
  }
  return std::nullopt;
}

/// fetch_protocol, folders, after and max_connections: how postern-fetch reads the mailbox.
void read_imap_keys(table_reader& r, mailbox& m) {
  m.protocol = m.pop3 || !m.imap ? fetch_protocol::pop3 : fetch_protocol::imap;
  if (auto v = r.get_choice<fetch_protocol>(
          "fetch_protocol", {{"pop3", fetch_protocol::pop3}, {"imap", fetch_protocol::imap}})) {
    m.protocol = *v;
    const auto& wanted = *v == fetch_protocol::pop3 ? m.pop3 : m.imap;
    if (!wanted && m.fetch)
      r.error("fetch_protocol", std::string("fetch_protocol = \"") + to_string(*v) +
                                    "\" but the mailbox has no " + to_string(*v) +
                                    " endpoint: set " + to_string(*v) + " = \"URL\"");
  }
  if (auto v = r.get_string_list("folders")) {
    if (v->empty()) r.error("folders", "needs at least one folder (the default is [\"INBOX\"])");
    for (const auto& f : *v)
      if (f.empty() || f.find_first_of("\r\n") != std::string::npos)
        r.error("folders", "\"" + f + "\" is not a folder name");
    if (!v->empty()) m.folders = *v;
  }
  if (auto v = r.get_string("after")) {
    m.after = parse_after(*v);
    if (!m.after)
      r.error("after",
              "\"" + *v + "\" is not one of \"keep\", \"seen\", \"move:FOLDER\", \"delete\"");
    else if (m.after->what == imap_after::kind::move &&
             std::find(m.folders.begin(), m.folders.end(), m.after->folder) != m.folders.end())
      r.error("after", "moves into " + m.after->folder +
                           ", which is also fetched: every message would be fetched again");
  }
  if (auto v = r.get_int("max_connections", 1, 50))
    m.max_connections = static_cast<std::uint32_t>(*v);
}

void read_mailbox(table_reader& r, mailbox& m, bool registry_private) {
  r.require("address");
  if (auto v = r.get_string("address")) {
    m.address = *v;
    if (!valid_address(m.address)) r.error("address", "\"" + m.address + "\" is not an address");
  }
  const provider_preset* preset = nullptr;
  if (auto v = r.get_string("provider")) {
    m.provider = *v;
    preset = find_provider(*v);
    if (!preset) {
      std::vector<std::string> names;
      for (const auto& p : provider_presets()) names.emplace_back(p.name);
      std::string hint = closest_match(*v, names);
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
      r.error("provider", "unknown provider \"" + *v + "\"" +
                              (hint.empty() ? "" : " (did you mean \"" + hint + "\"?)") +
                              "; known: " + list + ", or give smtp/pop3 URLs without provider");
    }
  }
  if (preset) {
    m.pec = preset->pec;
    m.limits = preset->limits;
    if (!preset->login_note.empty() && !r.has("login"))
      r.warning("provider", m.address + ": " + std::string(preset->login_note));
  }
  m.smtp = read_endpoint(r, "smtp", app_protocol::smtp, preset ? preset->smtp : "");
  m.pop3 = read_endpoint(r, "pop3", app_protocol::pop3, preset ? preset->pop3 : "");
  m.imap = read_endpoint(r, "imap", app_protocol::imap, preset ? preset->imap : "");
  if (auto v = r.get_string("login")) m.login = *v;
  if (m.login.empty()) m.login = m.address;
  if (auto v = r.get_string("password_file")) m.password_file = resolve_path(r.file(), *v);
  read_password_command(r, m);
  if (auto v = r.get_string("password")) {
    m.inline_password = std::make_shared<secret>(*v);
    if (!registry_private)
      r.error("password",
              "an inline password needs the registry file to be private (chmod "
              "600 " +
                  r.file() + "); or use password_file / password_command");
  }
  int sources = !m.password_file.empty() + !m.password_command.empty() + !!m.inline_password;
  if (sources == 0)
    r.error("address",
            "mailbox " + m.address + " has no secret: set password_file (or password_command)");
  if (sources > 1)
    r.error("password_file", "set only one of password_file, password_command, password");
  if (!m.password_file.empty())
    if (auto problem = check_private_file(m.password_file); !problem.empty())
      r.error("password_file", problem);
  if (auto v = r.get_bool("pec")) m.pec = *v;
  read_limits(r, m.limits);
  read_client_tls_keys(r, m.tls);
  if (auto v = r.get_bool("allow_cleartext")) m.allow_cleartext = *v;
  if (auto v = r.get_bool("fetch")) m.fetch = *v;
  if (auto v = r.get_string("deliver_to")) m.deliver_to = *v;
  if (auto v = r.get_string("deliver")) m.deliver = *v;
  read_imap_keys(r, m);
  r.finish();
  if (!m.smtp && !m.pop3 && !m.imap && r.has("address") && !r.has("provider"))
    r.error("address", "mailbox " + m.address + " needs a provider or smtp/pop3/imap URLs");
  check_cleartext(r, m, "smtp", m.smtp);
  check_cleartext(r, m, "pop3", m.pop3);
  check_cleartext(r, m, "imap", m.imap);
}

}  // namespace

const std::vector<provider_preset>& provider_presets() {
  // Hosts, ports and limits as documented by each provider (sources in
  // postern-mailboxes.toml(5)); every value can be overridden per mailbox.
  static const std::vector<provider_preset> presets = {
      {"aruba",
       "smtps://smtps.pec.aruba.it:465",
       "pop3s://pop3s.pec.aruba.it:995",
       "imaps://imaps.pec.aruba.it:993",
       true,
       {100 * MB, true, 500, 0},
       ""},
      {"legalmail",
       "smtps://sendm.cert.legalmail.it:465",
       "pop3s://mbox.cert.legalmail.it:995",
       "imaps://mbox.cert.legalmail.it:993",
       true,
       {0, false, 0, 6},
       "Legalmail logs in with the InfoCert user id (e.g. M1234567), not the address: set login"},
      {"namirial",
       "smtps://smtps.sicurezzapostale.it:465",
       "pop3s://pops.sicurezzapostale.it:995",
       "imaps://imaps.sicurezzapostale.it:993",
       true,
       {},
       ""},
      {"poste",
       "smtps://mail.postecert.it:465",
       "pop3s://mail.postecert.it:995",
       "imaps://mail.postecert.it:993",
       true,
       {},
       ""},
      // The providers below document IMAP only: their mailboxes are fetched over IMAP.
      {"register",
       "smtps://smtp.pec-email.com:465",
       "",
       "imaps://imap.pec-email.com:993",
       true,
       {},
       ""},
      {"actalis",
       "smtps://smtp.pec.actalis.it:465",
       "",
       "imaps://imap.pec.actalis.it:993",
       true,
       {},
       ""},
      {"libero",
       "smtps://mail.postacert.it.net:465",
       "",
       "imaps://mail.postacert.it.net:993",
       true,
       {},
       ""},
      {"tim",
       "smtps://smtp.telecompost.it:465",
       "",
       "imaps://mail.telecompost.it:993",
       true,
       {},
       ""},
  };
  return presets;
}

const provider_preset* find_provider(std::string_view name) {
  for (const auto& p : provider_presets())
    if (p.name == name) return &p;
  return nullptr;
}

bool same_address(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

const mailbox* mailbox_registry::find(std::string_view address) const {
  for (const auto& m : mailboxes)
    if (same_address(m.address, address)) return &m;
  return nullptr;
}

std::optional<mailbox_registry> load_mailbox_registry(const std::string& file, diagnostics& diags) {
  auto root = parse_toml_file(file, diags);
  if (!root) return std::nullopt;
  mailbox_registry registry;
  registry.file = file;
  table_reader r(*root, "", file, diags);
  const bool registry_private = file_is_private(file);
  if (const toml::array* list = r.get_table_array("mailbox")) {
    for (size_t i = 0; i < list->size(); ++i) {
      const toml::table& t = *list->get(i)->as_table();
      table_reader mr(t, "mailbox[" + std::to_string(i) + "]", file, diags);
      mailbox m;
      m.line = t.source().begin.line;
      read_mailbox(mr, m, registry_private);
      if (!m.address.empty() && registry.find(m.address))
        mr.error("address", m.address + " is declared twice");
      registry.mailboxes.push_back(std::move(m));
    }
  } else if (!r.has("mailbox")) {
    r.error("mailbox", "no [[mailbox]] declared");
  }
  r.finish();
  wipe_strings(*root);
  if (!diags.empty()) return std::nullopt;
  return registry;
}

void read_client_tls_keys(table_reader& r, tls_settings& tls) {
  if (auto v = r.get_choice<verify_mode>(
          "verify", {{"full", verify_mode::full}, {"none", verify_mode::none}}))
    tls.verify = *v;
  if (auto v = r.get_string("ca_file")) {
    tls.ca_file = resolve_path(r.file(), *v);
    check_ca_file(r, "ca_file", tls.ca_file);
  }
  if (auto v = r.get_string("verify_host")) tls.verify_host = *v;
  if (auto v = r.get_string_list("pin_sha256")) tls.pin_sha256 = *v;
  if (auto v = r.get_choice<tls_version>(
          "tls_min", {{"1.2", tls_version::tls1_2}, {"1.3", tls_version::tls1_3}}))
    tls.min_version = *v;
}

void read_client_credentials(table_reader& r, mailbox& m) {
  if (auto v = r.get_string("login")) m.login = *v;
  if (auto v = r.get_string("password_file")) {
    m.password_file = resolve_path(r.file(), *v);
    if (auto problem = check_private_file(m.password_file); !problem.empty())
      r.error("password_file", problem);
  }
  read_password_command(r, m);
  read_client_tls_keys(r, m.tls);
  if (auto v = r.get_bool("allow_cleartext")) m.allow_cleartext = *v;
  if (!m.login.empty() && m.password_file.empty() && m.password_command.empty())
    r.error("login", "login needs password_file or password_command");
  if (!m.password_file.empty() && !m.password_command.empty())
    r.error("password_file", "set only one of password_file, password_command");
}

}  // namespace postern::conf

namespace postern::conf {

const char* to_string(fetch_protocol p) { return p == fetch_protocol::imap ? "imap" : "pop3"; }

std::string imap_after::to_string() const {
  switch (what) {
    case kind::keep: return "keep";
    case kind::seen: return "seen";
    case kind::move: return "move:" + folder;
    case kind::remove: return "delete";
  }
  return "keep";
}

}  // namespace postern::conf
