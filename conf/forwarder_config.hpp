#pragma once
/// postern-forwarder configuration (`forwarder.toml`) plus the mailbox registry it names.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cidr.hpp"
#include "diagnostics.hpp"
#include "endpoint.hpp"
#include "mailbox_registry.hpp"
#include "units.hpp"

namespace postern::conf {

/// Which part of a message names the sending mailbox.
enum class sender_match { envelope, header, envelope_and_header };
enum class default_action { reject, relay };
enum class bcc_policy { reject, split };

struct forwarder_timeouts {
  duration command{std::chrono::minutes(5)};            ///< client: waiting for the next command
  duration data{std::chrono::minutes(3)};               ///< client: between two reads of DATA
  duration connect{std::chrono::seconds(30)};           ///< upstream: TCP connect
  duration handshake{std::chrono::seconds(30)};         ///< upstream and client: TLS handshake
  duration reply{std::chrono::minutes(2)};              ///< upstream: any reply but the final one
  duration final_reply{std::chrono::minutes(10)};       ///< upstream: reply to the end of DATA
  duration upstream_idle{std::chrono::seconds(30)};     ///< an unused upstream session is closed
  duration password_command{std::chrono::seconds(10)};  ///< a password_command run, whole
};

struct forwarder_config {
  std::string file;
  std::vector<address> listen;
  std::string hostname;  ///< for the greeting and EHLO; default: the host name
  std::vector<cidr> allow;
  std::string mailboxes_file;
  mailbox_registry registry;
  sender_match match = sender_match::envelope_and_header;
  std::uint64_t max_message_size = 100ull * 1000 * 1000;
  std::uint32_t max_recipients = 500;
  std::uint32_t max_sessions = 100;
  std::uint32_t max_sessions_per_address = 20;  ///< 0 = no per-address limit
  std::uint64_t min_data_rate = 1000;           ///< bytes/s a client must keep up in DATA
  std::string tls_cert_file;                    ///< STARTTLS offered to clients when set
  std::string tls_key_file;
  /// Users who may relay from outside `allow` after AUTH (crypt(3) hashes), "" = none.
  std::string auth_users_file;
  forwarder_timeouts timeouts;
  // [default]: senders with no mailbox
  default_action fallback = default_action::reject;
  std::optional<mailbox> smarthost;  ///< action = "relay": the relay as a pseudo-mailbox
  // [pec]
  bcc_policy bcc = bcc_policy::reject;
  std::string receipt_type;  ///< X-TipoRicevuta to set, "" = leave the message alone
  // [audit]
  std::string audit_file;
};

/// Loads forwarder.toml and the registry it names; nullopt with every problem on error.
std::optional<forwarder_config> load_forwarder_config(const std::string& file, diagnostics& diags);

const char* to_string(sender_match m);

}  // namespace postern::conf
