#pragma once
/// The one skeleton of every postern program: the start of main, --check, loading for
/// service, and serving (the first apply, SIGHUP reloads with rollback, SIGTERM/SIGINT drains,
/// readiness for systemd). A program says how its configuration loads and is verified; its
/// server says how a configuration is applied; this does the rest, the same way everywhere.

#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <asio/io_context.hpp>

#include "cli/config_report.hpp"
#include "cli/exit_codes.hpp"
#include "cli/log.hpp"
#include "cli/service_manager.hpp"
#include "cli/service_signals.hpp"
#include "conf/diagnostics.hpp"
#include "conf/insecure.hpp"
#include "conf/units.hpp"

namespace postern::cli {

/// What differs between programs in loading a configuration.
template <class Config>
struct program_config {
  /// Parses and validates the file, every error into `diags`.
  std::function<std::optional<Config>(const std::string& file, conf::diagnostics& diags)> load;
  /// What loading cannot see (TLS contexts built for real); errors name the setting.
  std::function<void(const Config&, std::vector<std::string>& errors)> verify;
};

/// A long-running server as serve() drives it.
template <class Config>
class served {
 public:
  virtual ~served() = default;
  /// Applies a configuration, the first or a reload: all of it, or nothing (errors say why).
  virtual bool apply(const Config& config, std::vector<std::string>& errors) = 0;
  /// Stops accepting; what runs gets `grace` to finish.
  virtual void shutdown(conf::duration grace) = 0;
  /// The loop that handles signals.
  virtual asio::io_context& main_context() = 0;
  /// Runs until shutdown completes.
  virtual void run() = 0;
  /// The "start" line: version, file, and what this server serves.
  virtual void log_start(const Config& config, const std::string& file) = 0;
};

/// The start of every main: no core dumps (they would hold passwords), and writes to a peer
/// that has gone fail with EPIPE instead of killing the process.
void start_program();

/// --grace's value; nullopt after telling the user what is wrong.
std::optional<conf::duration> parse_grace(const std::string& text, const char* program);

/// What checking one configuration file found: for a program's --check and `postern check`.
struct check_findings {
  bool loaded = false;  ///< it parsed and validated (diags holds no error)
  conf::diagnostics diags;
  std::vector<std::string> verify_errors;  ///< what building it for real found
  std::vector<conf::insecure_setting> insecure;
  [[nodiscard]] bool ok() const { return loaded && verify_errors.empty(); }
};

/// Loads and verifies `file` as `program` would, collecting everything found.
template <class Config>
check_findings check_file(const program_config<Config>& program, const std::string& file) {
  check_findings found;
  std::optional<Config> config = program.load(file, found.diags);
  if (!config) return found;
  found.loaded = true;
  if (program.verify) program.verify(*config, found.verify_errors);
  found.insecure = conf::insecure_settings(*config);
  return found;
}

/// --check: every error and warning on stderr as file:line:col: key: message, then
/// "configuration OK" on stdout (exit 0), or exit 78.
template <class Config>
int check_configuration(const program_config<Config>& program, const std::string& file) {
  check_findings found = check_file(program, file);
  print_diagnostics(found.diags, std::cerr);
  for (const auto& e : found.verify_errors) std::cerr << file << ": " << e << "\n";
  if (!found.ok()) return exit_code::config;
  log_insecure(found.insecure);
  std::cout << "configuration OK\n";
  return exit_code::ok;
}

/// Loading for service: errors and warnings go to the log; nullopt when it failed.
template <class Config>
std::optional<Config> load_configuration(const program_config<Config>& program,
                                         const std::string& file) {
  conf::diagnostics diags;
  std::optional<Config> config = program.load(file, diags);
  log_diagnostics(diags);
  return config;
}

/// Applies a loaded configuration: every error logged (false: nothing changed), then its
/// insecure settings, as at every start and reload.
template <class Config>
bool apply_configuration(const Config& config, served<Config>& server) {
  std::vector<std::string> errors;
  if (!server.apply(config, errors)) {
    for (const auto& e : errors) log::error("config.error", {{"error", e}});
    return false;
  }
  log_insecure(conf::insecure_settings(config));
  return true;
}

/// Loads `file` and applies it to `server`; false (every error logged) keeps what runs.
template <class Config>
bool load_and_apply(const program_config<Config>& program, const std::string& file,
                    served<Config>& server) {
  std::optional<Config> config = load_configuration(program, file);
  return config && apply_configuration(*config, server);
}

/// Serves `file` until SIGTERM/SIGINT and the drain end; SIGHUP reloads (a reload that fails
/// keeps the running configuration). `make` builds the server for the first configuration
/// (what only a restart changes, such as the number of threads). Exit 0, or 78 when the first
/// configuration fails.
template <class Config, class Make>
int serve(const program_config<Config>& program, const std::string& file, conf::duration grace,
          Make make) {
  std::optional<Config> config = load_configuration(program, file);
  if (!config) return exit_code::config;
  auto owned = make(*config);
  served<Config>& server = *owned;
  if (!apply_configuration(*config, server)) return exit_code::config;
  service_signals signals(
      server.main_context(), file, [&] { return load_and_apply(program, file, server); },
      [&] { server.shutdown(grace); });
  server.log_start(*config, file);
  notify_ready("serving");
  server.run();
  log::info("stop", {});
  return exit_code::ok;
}

}  // namespace postern::cli
