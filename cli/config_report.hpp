#pragma once
/// How every program reports what a configuration load found: on --check, each error and
/// warning on stderr as file:line:col: key.path: message; when serving (start, reload), each
/// as a log line.

#include <iosfwd>

#include "conf/diagnostics.hpp"

namespace postern::cli {

/// Errors (config.error) and warnings (config.warning) as log lines.
void log_diagnostics(const conf::diagnostics& diags);

/// Errors, then warnings ("warning: ..."), one per line.
void print_diagnostics(const conf::diagnostics& diags, std::ostream& out);

}  // namespace postern::cli
