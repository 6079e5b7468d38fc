#pragma once
/// The mailbox registry (`mailboxes.toml`), shared by the forwarder, fetch and `postern`:
/// each mailbox declared once with its provider, endpoints, login and secret.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "diagnostics.hpp"
#include "endpoint.hpp"
#include "secret.hpp"
#include "tunnel_config.hpp"

namespace postern::conf {

/// What a provider is known to enforce on submission. 0 = no known limit.
struct mailbox_limits {
  std::uint64_t max_message_size = 0;
  bool size_divided_by_recipients = false;  ///< the size cap applies to size x recipients
  std::uint32_t max_recipients = 0;
  std::uint32_t messages_per_minute = 0;
};

/// A provider preset: documented endpoints and limits (see postern-mailboxes.toml(5)).
struct provider_preset {
  std::string_view name;
  std::string_view smtp;  ///< endpoint URL, "" when not documented
  std::string_view pop3;
  std::string_view imap;
  bool pec = true;
  mailbox_limits limits;
  /// Warned about (by every program's --check and start) when a mailbox of this provider
  /// sets no login: the provider's login is not the address.
  std::string_view login_note;
};

const std::vector<provider_preset>& provider_presets();
const provider_preset* find_provider(std::string_view name);

class table_reader;

/// Which protocol postern-fetch uses for a mailbox.
enum class fetch_protocol { pop3, imap };
const char* to_string(fetch_protocol p);

/// What postern-fetch does on an IMAP server with a message once it is delivered and recorded.
struct imap_after {
  enum class kind { keep, seen, move, remove };
  kind what = kind::keep;
  std::string folder;  ///< move
  [[nodiscard]] std::string to_string() const;
};

struct mailbox {
  std::string address;
  std::string provider;  ///< preset name, "" when endpoints are explicit
  std::optional<endpoint> smtp;
  std::optional<endpoint> pop3;
  std::optional<endpoint> imap;
  std::string login;  ///< defaults to the address
  std::string password_file;
  std::vector<std::string> password_command;
  std::shared_ptr<const secret> inline_password;  ///< only when the registry file is private
  bool pec = false;
  mailbox_limits limits;
  tls_settings tls;  ///< client-side TLS to the provider (verify, ca_file, pins, ...)
  bool allow_cleartext = false;
  // Used by postern-fetch.
  bool fetch = true;
  std::string deliver_to;
  std::string deliver;
  fetch_protocol protocol = fetch_protocol::pop3;  ///< pop3 when it has a pop3 endpoint
  std::vector<std::string> folders{"INBOX"};       ///< IMAP folders fetched, in order
  /// IMAP: unset = "keep" when fetch keeps the mailbox's mail (PEC), else "delete".
  std::optional<imap_after> after;
  std::uint32_t max_connections = 2;  ///< IMAP connections at once (IDLE takes one per folder)
  int line = 0;                       ///< where it is declared, for messages
};

struct mailbox_registry {
  std::string file;
  std::vector<mailbox> mailboxes;
  /// The mailbox whose address equals `address`, compared case-insensitively.
  [[nodiscard]] const mailbox* find(std::string_view address) const;
};

/// Loads and validates the registry; nullopt with every problem in `diags` on error.
std::optional<mailbox_registry> load_mailbox_registry(const std::string& file, diagnostics& diags);

/// Reads the client-side TLS keys shared by mailboxes and other TLS clients: verify, ca_file,
/// verify_host, pin_sha256, tls_min.
void read_client_tls_keys(table_reader& r, tls_settings& tls);

/// Reads login, password_file (which must be private), password_command, allow_cleartext and
/// the TLS keys of a pseudo-mailbox (the forwarder's smarthost, fetch's [delivery]); a login needs
/// exactly one password source.
void read_client_credentials(table_reader& r, mailbox& m);

/// Compares e-mail addresses case-insensitively (providers treat local parts so too).
bool same_address(std::string_view a, std::string_view b);

}  // namespace postern::conf
