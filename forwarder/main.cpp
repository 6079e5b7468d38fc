// postern-forwarder: relays each message through the upstream and credentials of its
// sender's mailbox (the Postfix sender-dependent relay + SASL maps + stunnel replacement).
#include <unistd.h>

#include <cstring>
#include <iostream>

#include "cli/exit_codes.hpp"
#include "cli/log.hpp"
#include "cli/options.hpp"
#include "cli/program.hpp"
#include "conf/forwarder_config.hpp"
#include "forwarder/forwarder_server.hpp"
#include "forwarder/sendmail.hpp"
#include "postern/version.hpp"

namespace {

using namespace postern;

const std::string default_config = POSTERN_SYSCONFDIR "/forwarder.toml";

/// --sendmail, or invoked under the name "sendmail": sendmail's own command line.
int sendmail_main(int argc, char** argv, int first) {
  std::vector<std::string> args(argv + first, argv + argc);
  std::string error;
  auto options = forwarder::parse_sendmail_args(args, default_config, error);
  if (!options) {
    std::cerr << "postern-forwarder --sendmail: " << error
              << "\nusage: postern-forwarder --sendmail [-c FILE] [-f FROM] [-t] [-i] "
                 "[RECIPIENT...] < message\n";
    return exit_code::usage;
  }
  cli::common_options logging;
  logging.verbose = options->verbose;
  logging.trace = options->trace;
  logging.quiet = options->verbose == 0 && !options->trace;
  cli::apply_logging(logging);
  return forwarder::run_sendmail(*options, STDIN_FILENO);
}

}  // namespace

int main(int argc, char** argv) {
  cli::start_program();
  const char* name = std::strrchr(argv[0], '/');
  if (std::strcmp(name ? name + 1 : argv[0], "sendmail") == 0) return sendmail_main(argc, argv, 1);
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--sendmail") == 0) {
      if (i != 1) {
        std::cerr << "postern-forwarder: --sendmail must be the first argument\n";
        return exit_code::usage;
      }
      return sendmail_main(argc, argv, 2);
    }
  CLI::App app{
      "postern-forwarder: an SMTP server for your mail server's outgoing mail. Each message "
      "is relayed through the upstream and credentials of its sender's mailbox (mailboxes.toml); "
      "nothing is accepted that the upstream has not accepted.",
      "postern-forwarder"};
  app.footer(
      "Sendmail mode: postern-forwarder --sendmail [-c FILE] [-f FROM] [-t] [-i] [RECIPIENT...] "
      "< message\n  exit 0 relayed, 75 try again later, 69 refused, 65 message refused, "
      "78 configuration error.\nExit status (server): 0 ok, 64 usage, 78 configuration "
      "error.\nSee postern-forwarder(1), postern-forwarder.toml(5), postern-mailboxes.toml(5).");
  cli::common_options common;
  cli::add_common_options(app, common, default_config);
  std::string grace_text = "30s";
  app.add_option("--grace", grace_text,
                 "On SIGTERM/SIGINT, how long sessions may take to finish; then they are cut")
      ->capture_default_str();
  bool sendmail_flag = false;  // handled before parsing; declared here for --help
  app.add_flag("--sendmail", sendmail_flag,
               "Read one message on stdin, sendmail style (must come first)");
  if (auto stop = cli::parse_command_line(app, argc, argv)) return *stop;
  cli::apply_logging(common);
  if (common.check) return cli::check_configuration(forwarder::forwarder_program(), common.config);
  auto grace = cli::parse_grace(grace_text, "postern-forwarder");
  if (!grace) return exit_code::usage;
  const bool trace = common.trace;
  return cli::serve(forwarder::forwarder_program(), common.config, *grace,
                    [trace](const conf::forwarder_config&) {
                      return std::make_unique<forwarder::forwarder_server>(trace);
                    });
}
