#include "tunnel_config.hpp"

#include <set>

#include <openssl/base64.h>

#include "secret.hpp"
#include "table_reader.hpp"
#include "tls_files.hpp"

namespace postern::conf {

namespace {

constexpr const char* client_only_keys[] = {"verify",
                                            "ca_file",
                                            "ca_dir",
                                            "verify_host",
                                            "sni",
                                            "pin_sha256",
                                            "session_resumption",
                                            "starttls",
                                            "starttls_hostname"};
constexpr const char* server_only_keys[] = {"client_ca_file", "require_client_cert", "allow_cn",
                                            "allow_dns",      "allow_email",         "allow_uri",
                                            "session_tickets"};

bool is_sha256_base64(const std::string& text) {
  size_t len = 0;
  if (!EVP_DecodedLength(&len, text.size()) || len < 32) return false;
  std::vector<uint8_t> out(len);
  return EVP_DecodeBase64(out.data(), &len, out.size(),
                          reinterpret_cast<const uint8_t*>(text.data()), text.size()) &&
         len == 32;
}

void read_timeouts(table_reader& r, tunnel_timeouts& t) {
  if (auto v = r.get_duration("connect_timeout")) t.connect = *v;
  if (auto v = r.get_duration("handshake_timeout")) t.handshake = *v;
  if (auto v = r.get_duration("idle_timeout")) t.idle = *v;
  if (auto v = r.get_duration("close_linger")) t.close_linger = *v;
  for (auto [key, value] : {std::pair{"connect_timeout", t.connect},
                            {"handshake_timeout", t.handshake},
                            {"idle_timeout", t.idle}})
    if (value.count() <= 0 && r.has(key)) r.error(key, "must be longer than 0s");
}

void read_addresses(table_reader& r, tunnel_service& s) {
  if (auto text = r.get_string("accept")) {
    std::string message;
    if (auto a = parse_address(*text, true, &message))
      s.accept = *a;
    else
      r.error("accept", message);
  }
  if (auto list = r.get_string_list("connect")) {
    if (list->empty()) r.error("connect", "needs at least one target");
    for (const auto& text : *list) {
      std::string message;
      if (auto a = parse_address(text, false, &message))
        s.connect.push_back(*a);
      else
        r.error("connect", message);
    }
  }
}

/// Every file the TLS settings of the mode name, each problem at its key (the server's
/// own certificate is served: its expiry is warned about).
void check_tls_files(table_reader& r, const tls_settings& tls, bool server) {
  bool cert_ok = false;
  if (!tls.cert_file.empty()) cert_ok = check_cert_file(r, "cert_file", tls.cert_file, server);
  if (!tls.key_file.empty())
    check_key_file(r, "key_file", tls.key_file, cert_ok ? tls.cert_file : std::string());
  if (!server && !tls.ca_file.empty()) check_ca_file(r, "ca_file", tls.ca_file);
  if (!server && !tls.ca_dir.empty()) check_ca_dir(r, "ca_dir", tls.ca_dir);
  if (server && !tls.client_ca_file.empty()) check_ca_file(r, "client_ca_file", tls.client_ca_file);
}

/// Mode-dependent rules, checked once every key has been read.
void validate_service(table_reader& r, tunnel_service& s) {
  const bool client = s.mode == tunnel_mode::client;
  auto check_keys = [&](auto& keys) {
    for (const char* key : keys)
      if (r.has(key))
        r.error(key,
                std::string("applies only to mode = \"") + (client ? "server" : "client") + "\"");
  };
  if (client)
    check_keys(server_only_keys);
  else
    check_keys(client_only_keys);
  // The plaintext side must stay on this host unless the user says otherwise.
  if (!s.allow_cleartext) {
    if (client && !s.accept.host.empty() && !s.accept.is_local() &&
        s.accept.kind == address_kind::tcp)
      r.error("accept", "plaintext listener on a non-loopback address " + s.accept.to_string() +
                            "; set allow_cleartext = true if the network in between is trusted");
    if (!client)
      for (const auto& a : s.connect)
        if (!a.is_local())
          r.error("connect", "plaintext target " + a.to_string() +
                                 " is not on this host; set allow_cleartext = true if the "
                                 "network in between is trusted");
  }
  // A unix socket has no host name to verify the certificate against.
  if (client && s.tls.verify == verify_mode::full && s.tls.verify_host.empty())
    for (const auto& a : s.connect)
      if (a.kind == address_kind::unix_path) {
        r.error("connect", "TLS to " + a.to_string() +
                               " needs verify_host: the name its certificate must carry");
        break;
      }
  // Each missing half of a certificate is reported, each at its own place.
  const bool pair_needed = !client || !s.tls.cert_file.empty() || !s.tls.key_file.empty();
  const char* need = client ? "a client certificate needs both cert_file and key_file"
                            : "mode = \"server\" needs cert_file and key_file";
  if (pair_needed && s.tls.cert_file.empty()) r.error("cert_file", need);
  if (pair_needed && s.tls.key_file.empty()) r.error("key_file", need);
  check_tls_files(r, s.tls, !client);
  for (const auto& pin : s.tls.pin_sha256)
    if (!is_sha256_base64(pin))
      r.error("pin_sha256", "\"" + pin +
                                "\" is not a base64 SHA-256 digest (44 characters; get it with: "
                                "postern probe, or openssl x509 -pubkey | openssl pkey -pubin "
                                "-outform der | openssl dgst -sha256 -binary | base64)");
  if (!s.tls.allow_cn.empty() || !s.tls.allow_dns.empty() || !s.tls.allow_email.empty() ||
      !s.tls.allow_uri.empty() || s.tls.require_client_cert)
    if (s.tls.client_ca_file.empty())
      r.error("client_ca_file", "client certificate checks need client_ca_file");
  // After finish(): a misspelled "conect" is reported before the missing "connect".
  r.require("connect");
}

void read_service(table_reader& r, tunnel_service& s) {
  r.require("name");
  r.require("mode");
  r.require("accept");
  if (auto v = r.get_string("name")) s.name = *v;
  if (auto v = r.get_choice<tunnel_mode>(
          "mode", {{"client", tunnel_mode::client}, {"server", tunnel_mode::server}}))
    s.mode = *v;
  read_addresses(r, s);
  if (auto v = r.get_choice<failover_policy>(
          "failover",
          {{"priority", failover_policy::priority}, {"round-robin", failover_policy::round_robin}}))
    s.failover = *v;
  if (auto v = r.get_choice<app_protocol>("starttls", {{"smtp", app_protocol::smtp},
                                                       {"pop3", app_protocol::pop3},
                                                       {"imap", app_protocol::imap}}))
    s.starttls = *v;
  if (auto v = r.get_string("starttls_hostname")) s.starttls_hostname = *v;
  if (auto v = r.get_choice<proxy_version>("proxy_protocol",
                                           {{"v1", proxy_version::v1}, {"v2", proxy_version::v2}}))
    s.proxy_send = *v;
  if (auto v = r.get_bool("accept_proxy_protocol")) s.proxy_accept = *v;
  if (auto v = r.get_int("max_connections", 1, 1'000'000))
    s.max_connections = static_cast<uint32_t>(*v);
  if (auto v = r.get_bool("log_handshake_errors")) s.log_handshake_errors = *v;
  if (auto v = r.get_bool("allow_cleartext")) s.allow_cleartext = *v;
  read_timeouts(r, s.timeouts);
  read_tls_settings(r, s.tls);
  r.finish();
  validate_service(r, s);
}

}  // namespace

const char* to_string(tunnel_mode m) { return m == tunnel_mode::client ? "client" : "server"; }

void read_tls_settings(table_reader& r, tls_settings& tls) {
  if (auto v = r.get_choice<tls_version>(
          "tls_min", {{"1.2", tls_version::tls1_2}, {"1.3", tls_version::tls1_3}}))
    tls.min_version = *v;
  if (auto v = r.get_string("ciphers")) tls.ciphers = *v;
  if (auto v = r.get_string_list("alpn")) tls.alpn = *v;
  for (const auto& p : tls.alpn)
    if (p.empty() || p.size() > 255) r.error("alpn", "protocol names must be 1-255 bytes");
  // Relative paths are relative to the configuration file, as everywhere in postern (under
  // systemd the working directory is /).
  if (auto v = r.get_string("cert_file")) tls.cert_file = resolve_path(r.file(), *v);
  if (auto v = r.get_string("key_file")) tls.key_file = resolve_path(r.file(), *v);
  if (auto v = r.get_choice<verify_mode>(
          "verify", {{"full", verify_mode::full}, {"none", verify_mode::none}}))
    tls.verify = *v;
  if (auto v = r.get_string("ca_file")) tls.ca_file = resolve_path(r.file(), *v);
  if (auto v = r.get_string("ca_dir")) tls.ca_dir = resolve_path(r.file(), *v);
  if (auto v = r.get_string("verify_host")) tls.verify_host = *v;
  if (auto v = r.get_string("sni")) tls.sni = *v;
  if (auto v = r.get_string_list("pin_sha256")) tls.pin_sha256 = *v;
  if (auto v = r.get_bool("session_resumption")) tls.session_resumption = *v;
  if (auto v = r.get_string("client_ca_file")) tls.client_ca_file = resolve_path(r.file(), *v);
  if (auto v = r.get_bool("require_client_cert")) tls.require_client_cert = *v;
  if (auto v = r.get_string_list("allow_cn")) tls.allow_cn = *v;
  if (auto v = r.get_string_list("allow_dns")) tls.allow_dns = *v;
  if (auto v = r.get_string_list("allow_email")) tls.allow_email = *v;
  if (auto v = r.get_string_list("allow_uri")) tls.allow_uri = *v;
  if (auto v = r.get_bool("session_tickets")) tls.session_tickets = *v;
}

std::optional<tunnel_config> load_tunnel_config(const std::string& file, diagnostics& diags) {
  auto root = parse_toml_file(file, diags);
  if (!root) return std::nullopt;
  tunnel_config config;
  config.file = file;
  table_reader r(*root, "", file, diags);
  if (auto v = r.get_int("threads", 0, 256)) config.threads = static_cast<unsigned>(*v);
  const toml::array* services = r.get_table_array("service");
  if (!services && !r.has("service")) r.error("service", "no [[service]] defined: nothing to do");
  if (services) {
    std::set<std::string> names;
    std::vector<address> accepts;
    for (size_t i = 0; i < services->size(); ++i) {
      table_reader sr(*services->get(i)->as_table(), "service[" + std::to_string(i) + "]", file,
                      diags);
      tunnel_service s;
      read_service(sr, s);
      if (!s.name.empty() && !names.insert(s.name).second)
        sr.error("name", "service name \"" + s.name + "\" is used twice");
      for (const auto& a : accepts)
        if (a == s.accept && sr.has("accept"))
          sr.error("accept", s.accept.to_string() + " is already used by another service");
      accepts.push_back(s.accept);
      config.services.push_back(std::move(s));
    }
  }
  r.finish();
  if (!diags.empty()) return std::nullopt;
  return config;
}

}  // namespace postern::conf
