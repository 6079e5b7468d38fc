#pragma once
/// Command-line options shared by every postern program.

#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "log.hpp"

namespace postern::cli {

struct common_options {
  std::string config;  ///< -c/--config
  bool check = false;  ///< --check: validate, print "configuration OK", exit
  int verbose = 0;     ///< -v, repeatable: info -> debug -> trace
  bool quiet = false;  ///< -q: warnings and errors only
  bool trace = false;  ///< --trace: protocol dialogues (secrets redacted)
  std::string log_format = "text";
};

/// Adds -c/--config, --check, -v, -q, --trace, --log-format and --version to `app`.
void add_common_options(CLI::App& app, common_options& opts, const std::string& default_config);

/// Parses the command line; returns the exit status when the program must stop here
/// (--help, --version: 0; a usage error: 64, with the message printed).
std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv);

/// Applies the logging options to the process logger.
void apply_logging(const common_options& opts);

/// "postern-tunnel 0.1.0 (BoringSSL, API 17)".
std::string version_text(const std::string& program);

}  // namespace postern::cli
