#include "endpoint.hpp"

#include <array>
#include <charconv>

namespace postern::conf {

namespace {

void set_error(std::string* error, std::string text) {
  if (error) *error = std::move(text);
}

bool parse_port(std::string_view text, std::uint16_t& port) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value == 0 || value > 65535)
    return false;
  port = static_cast<std::uint16_t>(value);
  return true;
}

/// Splits "host:port" or "[v6]:port"; the port may be absent when `default_port` is non-zero.
std::optional<address> parse_host_port(std::string_view text, std::uint16_t default_port,
                                       std::string* error) {
  address a;
  std::string_view port_text;
  if (text.starts_with('[')) {
    auto close = text.find(']');
    if (close == std::string_view::npos) {
      set_error(error, "unclosed '[' in address \"" + std::string(text) + "\"");
      return std::nullopt;
    }
    a.host = std::string(text.substr(1, close - 1));
    auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') {
        set_error(error, "expected ':' after ']' in \"" + std::string(text) + "\"");
        return std::nullopt;
      }
      port_text = rest.substr(1);
    }
  } else {
    auto colon = text.rfind(':');
    if (colon != std::string_view::npos && text.find(':') != colon) {
      set_error(error, "IPv6 address \"" + std::string(text) +
                           "\" must be written in brackets, as [addr]:port");
      return std::nullopt;
    }
    a.host = std::string(text.substr(0, colon));
    if (colon != std::string_view::npos) port_text = text.substr(colon + 1);
  }
  if (a.host.empty()) {
    set_error(error, "missing host in \"" + std::string(text) + "\"");
    return std::nullopt;
  }
  if (port_text.empty() && default_port == 0) {
    set_error(error, "missing port in \"" + std::string(text) + "\" (write host:port)");
    return std::nullopt;
  }
  a.port = default_port;
  if (!port_text.empty() && !parse_port(port_text, a.port)) {
    set_error(error, "invalid port \"" + std::string(port_text) + "\" in \"" + std::string(text) +
                         "\" (1-65535)");
    return std::nullopt;
  }
  return a;
}

struct scheme_info {
  std::string_view name;
  tls_mode tls;
  app_protocol protocol;
  std::uint16_t port;
};

constexpr std::array<scheme_info, 13> schemes{{
    {"smtps", tls_mode::implicit, app_protocol::smtp, 465},
    {"smtp+starttls", tls_mode::starttls, app_protocol::smtp, 587},
    {"smtp", tls_mode::none, app_protocol::smtp, 25},
    {"pop3s", tls_mode::implicit, app_protocol::pop3, 995},
    {"pop3+starttls", tls_mode::starttls, app_protocol::pop3, 110},
    {"pop3", tls_mode::none, app_protocol::pop3, 110},
    {"imaps", tls_mode::implicit, app_protocol::imap, 993},
    {"imap+starttls", tls_mode::starttls, app_protocol::imap, 143},
    {"imap", tls_mode::none, app_protocol::imap, 143},
    {"lmtp", tls_mode::none, app_protocol::lmtp, 24},
    {"tls", tls_mode::implicit, app_protocol::none, 0},
    {"tcp", tls_mode::none, app_protocol::none, 0},
    {"unix", tls_mode::none, app_protocol::none, 0},
}};

}  // namespace

std::string address::to_string() const {
  switch (kind) {
    case address_kind::unix_path: return "unix:" + path;
    case address_kind::systemd: return "systemd:" + path;
    case address_kind::tcp: break;
  }
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

bool address::is_local() const {
  if (kind != address_kind::tcp) return true;
  return host == "localhost" || host == "::1" || host.starts_with("127.");
}

std::optional<address> parse_address(std::string_view text, bool allow_systemd,
                                     std::string* error) {
  if (text.starts_with("unix:")) {
    address a{address_kind::unix_path, {}, 0, std::string(text.substr(5))};
    if (a.path.empty() || a.path[0] != '/') {
      set_error(error, "unix socket path must be absolute, as unix:/run/name.sock");
      return std::nullopt;
    }
    return a;
  }
  if (text.starts_with("systemd:")) {
    if (!allow_systemd) {
      set_error(error, "systemd: sockets can only be listened on");
      return std::nullopt;
    }
    address a{address_kind::systemd, {}, 0, std::string(text.substr(8))};
    if (a.path.empty()) {
      set_error(error, "missing socket name after systemd: (the FileDescriptorName= of the unit)");
      return std::nullopt;
    }
    return a;
  }
  if (text.find("://") != std::string_view::npos) {
    set_error(error, "expected host:port, [v6]:port or unix:/path, got a URL \"" +
                         std::string(text) + "\"");
    return std::nullopt;
  }
  return parse_host_port(text, 0, error);
}

const char* to_string(tls_mode m) {
  switch (m) {
    case tls_mode::none: return "none";
    case tls_mode::implicit: return "implicit";
    case tls_mode::starttls: return "starttls";
  }
  return "?";
}

const char* to_string(app_protocol p) {
  switch (p) {
    case app_protocol::none: return "none";
    case app_protocol::smtp: return "smtp";
    case app_protocol::pop3: return "pop3";
    case app_protocol::imap: return "imap";
    case app_protocol::lmtp: return "lmtp";
  }
  return "?";
}

std::string endpoint::to_string() const {
  if (addr.kind == address_kind::unix_path) return scheme + ":" + addr.path;
  return scheme + "://" + addr.to_string();
}

std::string port_scheme_advice(const endpoint& e) {
  if (e.addr.kind != address_kind::tcp) return {};
  struct rule {
    app_protocol protocol;
    std::uint16_t port;
    tls_mode expected;
    const char* advice;
  };
  static constexpr rule rules[] = {
      {app_protocol::smtp, 465, tls_mode::implicit, "465 is implicit TLS: use smtps://"},
      {app_protocol::smtp, 587, tls_mode::starttls,
       "587 is submission with STARTTLS: use smtp+starttls://"},
      {app_protocol::smtp, 25, tls_mode::starttls,
       "25 speaks STARTTLS, not implicit TLS: use smtp+starttls:// (or smtp://)"},
      {app_protocol::pop3, 995, tls_mode::implicit, "995 is implicit TLS: use pop3s://"},
      {app_protocol::pop3, 110, tls_mode::starttls,
       "110 speaks STLS, not implicit TLS: use pop3+starttls://"},
      {app_protocol::imap, 993, tls_mode::implicit, "993 is implicit TLS: use imaps://"},
      {app_protocol::imap, 143, tls_mode::starttls,
       "143 speaks STARTTLS, not implicit TLS: use imap+starttls://"},
  };
  for (const auto& r : rules) {
    if (r.protocol != e.protocol || r.port != e.addr.port) continue;
    if (r.expected == tls_mode::implicit && e.tls != tls_mode::implicit) return r.advice;
    // A STARTTLS port with cleartext is fine (the URL says so); only implicit TLS is wrong.
    if (r.expected == tls_mode::starttls && e.tls == tls_mode::implicit) return r.advice;
  }
  return {};
}

std::optional<endpoint> parse_endpoint(std::string_view url, std::string* error) {
  auto colon = url.find(':');
  if (colon == std::string_view::npos) {
    set_error(error, "expected a URL such as smtps://host:465, got \"" + std::string(url) + "\"");
    return std::nullopt;
  }
  auto scheme = url.substr(0, colon);
  const scheme_info* info = nullptr;
  for (const auto& s : schemes)
    if (s.name == scheme) info = &s;
  if (!info) {
    set_error(error, "unknown URL scheme \"" + std::string(scheme) +
                         "\" (use smtps, smtp+starttls, smtp, pop3s, pop3+starttls, pop3, imaps, "
                         "imap+starttls, imap, lmtp, tls, tcp or unix)");
    return std::nullopt;
  }
  endpoint e{std::string(scheme), info->tls, info->protocol, {}};
  auto rest = url.substr(colon + 1);
  if (rest.starts_with("//")) {
    auto a = parse_host_port(rest.substr(2), info->port, error);
    if (!a) return std::nullopt;
    e.addr = *a;
  } else if (rest.starts_with('/') && (scheme == "lmtp" || scheme == "unix")) {
    e.addr = address{address_kind::unix_path, {}, 0, std::string(rest)};
  } else {
    set_error(error, "expected \"//host:port\" after \"" + std::string(scheme) + ":\" in \"" +
                         std::string(url) + "\"");
    return std::nullopt;
  }
  return e;
}

}  // namespace postern::conf
