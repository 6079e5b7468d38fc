#pragma once
/// `postern-forwarder --sendmail`: one message from stdin through the same routing, PEC
/// rules and upstream sessions as the SMTP server, with sendmail's command line and exit
/// statuses, so cron, scripts and postern-fetch's exec target can use it as `sendmail`.

#include <optional>
#include <string>
#include <vector>

#include "relay.hpp"

namespace postern::forwarder {

struct sendmail_options {
  std::string config;                    ///< -c/--config
  std::string from;                      ///< -f/-r; default: the From: header's address
  bool recipients_from_headers = false;  ///< -t
  bool dot_ends_message = true;          ///< cleared by -i / -oi
  std::vector<std::string> recipients;
  int verbose = 0;
  bool trace = false;
};

/// Parses sendmail-style arguments (those after --sendmail). nullopt + error on misuse.
std::optional<sendmail_options> parse_sendmail_args(const std::vector<std::string>& args,
                                                    const std::string& default_config,
                                                    std::string& error);

/// Relays one message read from `fd`; returns a sysexits code (0, 75, 69, 65, 78) and
/// writes the reason of any failure to stderr.
int run_sendmail(const sendmail_options& options, int fd);

}  // namespace postern::forwarder
