#pragma once
/// `postern probe`: connect to a provider's SMTP or POP3 endpoint the way the programs do and
/// say, step by step with timings, what happened: each address tried, implicit TLS or
/// STARTTLS, the TLS version, cipher and ALPN, the whole chain, the verification with its
/// trust store and host name, the capabilities. Nothing is sent that changes anything.

#include <chrono>
#include <iosfwd>
#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "conf/endpoint.hpp"
#include "conf/mailbox_registry.hpp"
#include "conf/units.hpp"
#include "tunnel/net/connect.hpp"
#include "tunnel/net/peer_certificates.hpp"
#include "tunnel/net/secret_source.hpp"

namespace postern::admin {

struct probe_request {
  std::string label;  ///< what was asked: the mailbox address or the URL
  conf::endpoint endpoint;
  conf::tls_settings tls;  ///< the mailbox's, or the defaults (system store, full checks)
  std::string hello_name;  ///< for EHLO
  conf::duration timeout = std::chrono::seconds(15);  ///< each phase: connect, TLS, each reply
  /// --auth: log in with each mechanism offered, in turn (a mailbox's login and password).
  bool auth = false;
  bool trace = false;  ///< the dialogue on standard error, credentials redacted
  std::string login;
  net::password_source password;
};

/// One login tried: the server's own final reply, its enhanced status code when it has one.
struct login_attempt {
  std::string mechanism;  ///< "PLAIN", "LOGIN" or (POP3) "USER"
  bool ok = false;
  bool tried = true;     ///< false: not needed, an earlier mechanism logged in
  std::string reply;     ///< the server's final line, with any echo of the password redacted
  std::string enhanced;  ///< "5.7.8" (SMTP, RFC 3463), "" when the reply has none
};

/// How a probe ended; the exit status follows (sysexits.h).
enum class probe_outcome { ok, unreachable, tls_failed, refused, login_refused, no_password };
const char* to_string(probe_outcome o);
int exit_status(probe_outcome o);

struct probe_result {
  std::string label;
  std::string url;
  std::string hint;  ///< the port contradicts the scheme: what to write instead
  std::chrono::microseconds resolve_took{};
  std::vector<net::connect_attempt> attempts;
  std::string tls_mode;                          ///< "implicit" or "starttls"
  std::vector<std::string> capabilities_before;  ///< EHLO or CAPA before STARTTLS
  std::vector<std::string> capabilities_after;   ///< EHLO or CAPA over TLS
  std::vector<login_attempt> logins;             ///< --auth
  std::string mailbox_status;                    ///< POP3 STAT's reply after a login
  std::chrono::microseconds tls_took{};
  std::string tls_version, tls_cipher, alpn;
  std::vector<net::certificate_info> chain;
  std::string trust_store;   ///< the CA file or directory the chain was checked against
  std::string checked_name;  ///< the name the certificate must carry
  std::vector<std::string> pins;
  std::string verification;  ///< "ok", "ok+pin", "pin", "none" or "failed"
  std::string failure;       ///< what went wrong, in the server's or the check's words
  probe_outcome outcome = probe_outcome::ok;
};

/// Runs one probe; never throws for a network failure (it is the result).
asio::awaitable<probe_result> probe(asio::any_io_executor ex, probe_request request);

/// The requests for `target`: a mailbox of `registry` (its smtp and pop3 endpoints, or the one
/// `only` names: "smtp" or "pop3") or a URL; false and `error` when it is neither.
bool probe_requests(const std::string& target, const conf::mailbox_registry* registry,
                    const std::string& only, std::vector<probe_request>& out, std::string& error);

/// Step by step, then the verdict line.
void print_probe_text(const probe_result& r, std::ostream& out);
/// {"ok", "probes": [...]} for every probe of one run.
void print_probe_json(const std::vector<probe_result>& results, std::ostream& out);

}  // namespace postern::admin
