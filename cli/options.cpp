#include "options.hpp"

#include <openssl/base.h>

#include "exit_codes.hpp"
#include "postern/version.hpp"

namespace postern::cli {

void add_common_options(CLI::App& app, common_options& opts, const std::string& default_config) {
  opts.config = default_config;
  app.add_option("-c,--config", opts.config, "Configuration file (default " + default_config + ")")
      ->capture_default_str()
      ->option_text("PATH");
  app.add_flag("--check", opts.check,
               "Validate the configuration, print \"configuration OK\" and exit (78 on errors)");
  app.add_flag("-v,--verbose", opts.verbose, "More detail in logs (repeat for protocol traces)");
  app.add_flag("-q,--quiet", opts.quiet, "Log only warnings and errors");
  app.add_flag("--trace", opts.trace, "Log protocol dialogues (credentials are always redacted)");
  app.add_option("--log-format", opts.log_format, "Log line format")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.set_version_flag("--version", version_text(app.get_name()));
}

std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : exit_code::usage;
  }
  return std::nullopt;
}

void apply_logging(const common_options& opts) {
  auto& lg = log::logger::instance();
  log::level l = log::level::info;
  if (opts.quiet) l = log::level::warn;
  if (opts.verbose >= 1) l = log::level::debug;
  if (opts.verbose >= 2 || opts.trace) l = log::level::trace;
  lg.set_level(l);
  lg.set_format(opts.log_format == "json" ? log::format::json : log::format::text);
}

std::string version_text(const std::string& program) {
  return program + " " POSTERN_VERSION " (BoringSSL, API " + std::to_string(BORINGSSL_API_VERSION) +
         ")";
}

}  // namespace postern::cli
