// postern-tunnel: plain <-> TLS port forwarder (the stunnel replacement).
#include <iostream>

#include "cli/exit_codes.hpp"
#include "cli/options.hpp"
#include "cli/program.hpp"
#include "conf/tunnel_config.hpp"
#include "postern/version.hpp"
#include "tunnel/stdio_tunnel.hpp"
#include "tunnel/tunnel_server.hpp"

namespace {

using namespace postern;

/// --stdio and the options of that mode.
void add_stdio_options(CLI::App& app, bool& stdio, tunnel::stdio_options& so) {
  app.add_flag("--stdio", stdio, "Carry one connection over stdin/stdout instead of listening");
  auto group = app.add_option_group("stdio", "Options of --stdio mode");
  group->add_option("--connect", so.connect_url,
                    "Target URL: tls://host:port, smtps://host, smtp+starttls://host, "
                    "pop3s://host, pop3+starttls://host, imaps://host, imap+starttls://host");
  group->add_option("--ca-file", so.tls.ca_file,
                    "Trusted CA certificates (PEM); default: system store");
  group->add_option("--ca-dir", so.tls.ca_dir, "Directory of trusted CA certificates (hashed)");
  group->add_option("--verify-host", so.tls.verify_host, "Name the certificate must match");
  group->add_option("--sni", so.tls.sni, "SNI name to send (\"\" for none)");
  group->add_option("--pin-sha256", so.tls.pin_sha256,
                    "Accepted SPKI SHA-256 pin (base64); repeatable");
  group->add_option("--verify", so.verify, "\"full\" (default) or \"none\" (insecure, logged)")
      ->check(CLI::IsMember({"full", "none"}));
  group->add_option("--cert-file", so.tls.cert_file, "Client certificate chain (PEM) for mTLS");
  group->add_option("--key-file", so.tls.key_file, "Its private key (must be mode 0600)");
  group->add_option("--alpn", so.tls.alpn, "ALPN protocol to offer; repeatable");
  group->add_option("--tls-min", so.tls_min, "Lowest TLS version: 1.2 or 1.3")
      ->check(CLI::IsMember({"1.2", "1.3"}));
  group->add_option("--ciphers", so.tls.ciphers, "TLS 1.2 cipher list");
  group->add_option("--ehlo", so.starttls_hostname, "Name for EHLO in smtp+starttls mode");
  group->add_option("--connect-timeout", so.connect_timeout, "Default 10s");
  group->add_option("--handshake-timeout", so.handshake_timeout, "Default 15s");
  group->add_option("--idle-timeout", so.idle_timeout, "Default 60m");
}

/// One connection over stdin/stdout; the exit status.
int run_stdio(const tunnel::stdio_options& so) {
  if (so.connect_url.empty()) {
    std::cerr << "postern-tunnel: --stdio needs --connect URL\n";
    return exit_code::usage;
  }
  conf::tunnel_service service;
  std::vector<std::string> errors;
  if (!tunnel::make_stdio_service(so, service, errors)) {
    for (const auto& e : errors) std::cerr << "postern-tunnel: " << e << "\n";
    return exit_code::usage;
  }
  return tunnel::run_stdio(service);
}

}  // namespace

int main(int argc, char** argv) {
  cli::start_program();
  CLI::App app{
      "postern-tunnel: forward plaintext connections over TLS (client mode) or TLS "
      "connections to plaintext services (server mode), with certificate verification on by "
      "default.",
      "postern-tunnel"};
  app.footer(
      "Exit status: 0 ok, 64 usage, 69 target unreachable, 75 timeout, 76 TLS or "
      "protocol failure, 78 configuration error.\nSee postern-tunnel(1) and "
      "postern-tunnel.toml(5).");
  cli::common_options common;
  cli::add_common_options(app, common, POSTERN_SYSCONFDIR "/tunnel.toml");
  std::string grace_text = "30s";
  app.add_option(
         "--grace", grace_text,
         "On SIGTERM/SIGINT, how long open connections may take to finish; then they are cut")
      ->capture_default_str();

  bool stdio = false;
  tunnel::stdio_options so;
  add_stdio_options(app, stdio, so);

  if (auto stop = cli::parse_command_line(app, argc, argv)) return *stop;
  cli::apply_logging(common);

  if (stdio) return run_stdio(so);
  if (!so.connect_url.empty()) {
    std::cerr << "postern-tunnel: --connect is an option of --stdio mode\n";
    return exit_code::usage;
  }
  if (common.check) return cli::check_configuration(tunnel::tunnel_program(), common.config);
  auto grace = cli::parse_grace(grace_text, "postern-tunnel");
  if (!grace) return exit_code::usage;
  return cli::serve(tunnel::tunnel_program(), common.config, *grace,
                    [](const conf::tunnel_config& config) {
                      return std::make_unique<tunnel::tunnel_server>(config.threads);
                    });
}
