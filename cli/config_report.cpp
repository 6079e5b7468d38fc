#include "config_report.hpp"

#include <ostream>

#include "log.hpp"

namespace postern::cli {

void log_diagnostics(const conf::diagnostics& diags) {
  for (const auto& d : diags.items()) log::error("config.error", {{"error", d.to_string()}});
  for (const auto& d : diags.warnings()) log::warn("config.warning", {{"warning", d.to_string()}});
}

void log_insecure(const std::vector<conf::insecure_setting>& settings) {
  for (const auto& s : settings)
    log::warn("config.insecure",
              {{s.owner_kind, s.owner}, {"setting", s.setting}, {"effect", s.effect}});
}

void print_diagnostics(const conf::diagnostics& diags, std::ostream& out) {
  out << diags.to_string() << diags.warnings_text();
}

}  // namespace postern::cli
