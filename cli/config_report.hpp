#pragma once
/// How every program reports what a configuration load found: on --check, each error and
/// warning on stderr as file:line:col: key.path: message; when serving (start, reload), each
/// as a log line.

#include <iosfwd>

#include <vector>

#include "conf/diagnostics.hpp"
#include "conf/insecure.hpp"

namespace postern::cli {

/// Errors (config.error) and warnings (config.warning) as log lines.
void log_diagnostics(const conf::diagnostics& diags);

/// Each insecure setting as a config.insecure warning (every start and reload).
void log_insecure(const std::vector<conf::insecure_setting>& settings);

/// Errors, then warnings ("warning: ..."), one per line.
void print_diagnostics(const conf::diagnostics& diags, std::ostream& out);

}  // namespace postern::cli
