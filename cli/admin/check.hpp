#pragma once
/// `postern check`: every postern configuration of the host in one run, each loaded and
/// verified by the same code its program uses, with every error and warning at once.

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "conf/diagnostics.hpp"
#include "conf/insecure.hpp"

namespace postern::admin {

/// Which program reads a configuration file.
enum class config_kind { tunnel, forwarder, fetch, registry };
const char* to_string(config_kind k);

/// The kind of `file`: by its name first (tunnel*.toml, forwarder*.toml, fetch*.toml,
/// mailboxes*.toml), else by its keys ([[service]], [[mailbox]], listen, deliver or
/// state_dir); nullopt (and `why`) when neither tells.
std::optional<config_kind> kind_of(const std::string& file, std::string& why);

/// The *.toml files of `dir`, sorted; false (and `error`) when it cannot be read.
bool config_files_in(const std::string& dir, std::vector<std::string>& out, std::string& error);

struct checked_file {
  std::string file;
  std::optional<config_kind> kind;
  bool ok = false;  ///< loaded and verified without an error
};

/// Everything one run found, each problem once even when two configurations read the same
/// registry.
struct check_report {
  std::vector<checked_file> files;
  std::vector<conf::diagnostic> errors;
  std::vector<conf::diagnostic> warnings;
  std::vector<conf::insecure_setting> insecure;
  [[nodiscard]] bool ok() const { return errors.empty(); }
};

/// Checks each file; a registry that a forwarder or fetch configuration names is checked
/// through them.
check_report check_files(const std::vector<std::string>& files);

/// Errors, then warnings, then insecure settings (each "warning: ..."), on `err`; the verdict
/// line on `out` ("configuration OK: N files" or "N errors in M files").
void print_text(const check_report& report, std::ostream& out, std::ostream& err);
/// One JSON document: {"ok", "files", "errors", "warnings", "insecure"}.
void print_json(const check_report& report, std::ostream& out);

}  // namespace postern::admin
