#include "cli/admin/check.hpp"

#include <algorithm>
#include <filesystem>
#include <ostream>
#include <set>
#include <system_error>

#include "cli/json_writer.hpp"
#include "cli/program.hpp"
#include "conf/mailbox_registry.hpp"
#include "conf/table_reader.hpp"
#include "fetch/run_all.hpp"
#include "forwarder/forwarder_server.hpp"
#include "tunnel/tunnel_server.hpp"

namespace postern::admin {

namespace fs = std::filesystem;

const char* to_string(config_kind k) {
  switch (k) {
    case config_kind::tunnel: return "tunnel";
    case config_kind::forwarder: return "forwarder";
    case config_kind::fetch: return "fetch";
    case config_kind::registry: return "mailboxes";
  }
  return "?";
}

namespace {

std::optional<config_kind> kind_by_name(const std::string& file) {
  const std::string name = fs::path(file).filename().string();
  const std::pair<const char*, config_kind> prefixes[] = {{"tunnel", config_kind::tunnel},
                                                          {"forwarder", config_kind::forwarder},
                                                          {"fetch", config_kind::fetch},
                                                          {"mailboxes", config_kind::registry}};
  for (const auto& [prefix, kind] : prefixes)
    if (name.starts_with(prefix)) return kind;
  return std::nullopt;
}

/// A registry on its own: what the forwarder and fetch would say of it.
cli::check_findings check_registry(const std::string& file) {
  cli::check_findings found;
  auto registry = conf::load_mailbox_registry(file, found.diags);
  if (!registry) return found;
  found.loaded = true;
  for (const auto& m : registry->mailboxes) conf::add_insecure_settings(m, file, found.insecure);
  return found;
}

cli::check_findings check_one(const std::string& file, config_kind kind) {
  switch (kind) {
    case config_kind::tunnel: return cli::check_file(tunnel::tunnel_program(), file);
    case config_kind::forwarder: return cli::check_file(forwarder::forwarder_program(), file);
    case config_kind::fetch: return cli::check_file(fetch::fetch_program(), file);
    case config_kind::registry: return check_registry(file);
  }
  return {};
}

/// Adds what one file's check found to the report, each problem once.
class report_builder {
 public:
  explicit report_builder(check_report& report) : report_(report) {}

  void error(const conf::diagnostic& d) { add(d, report_.errors, errors_seen_); }
  void warning(const conf::diagnostic& d) { add(d, report_.warnings, warnings_seen_); }
  void insecure(const conf::insecure_setting& s) {
    if (insecure_seen_.insert(s.file + "\n" + s.owner_kind + "\n" + s.owner + "\n" + s.setting)
            .second)
      report_.insecure.push_back(s);
  }
  void findings(const std::string& file, const cli::check_findings& found) {
    for (const auto& d : found.diags.items()) error(d);
    for (const auto& d : found.diags.warnings()) warning(d);
    for (const auto& e : found.verify_errors) error({file, 0, 0, "", e});
    for (const auto& s : found.insecure) insecure(s);
  }

 private:
  static void add(const conf::diagnostic& d, std::vector<conf::diagnostic>& to,
                  std::set<std::string>& seen) {
    if (seen.insert(d.to_string()).second) to.push_back(d);
  }
  check_report& report_;
  std::set<std::string> errors_seen_, warnings_seen_, insecure_seen_;
};

}  // namespace

std::optional<config_kind> kind_of(const std::string& file, std::string& why) {
  if (auto kind = kind_by_name(file)) return kind;
  conf::diagnostics diags;
  auto root = conf::parse_toml_file(file, diags);
  if (!root) {
    why = diags.items().empty() ? "cannot be read" : diags.items().front().message;
    return std::nullopt;
  }
  if (root->contains("service")) return config_kind::tunnel;
  if (root->contains("mailbox")) return config_kind::registry;
  if (root->contains("listen")) return config_kind::forwarder;
  if (root->contains("deliver") || root->contains("state_dir")) return config_kind::fetch;
  why =
      "cannot tell which program reads it: name it tunnel*.toml, forwarder*.toml, fetch*.toml "
      "or mailboxes*.toml";
  return std::nullopt;
}

bool config_files_in(const std::string& dir, std::vector<std::string>& out, std::string& error) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    error = dir + ": " + ec.message();
    return false;
  }
  for (const auto& entry : it)
    if (entry.path().extension() == ".toml" && !entry.is_directory(ec))
      out.push_back(entry.path().string());
  std::sort(out.begin(), out.end());
  if (out.empty()) {
    error = dir + ": no *.toml configuration in it";
    return false;
  }
  return true;
}

check_report check_files(const std::vector<std::string>& files) {
  check_report report;
  report_builder add(report);
  for (const auto& file : files) {
    std::string why;
    checked_file checked{file, kind_of(file, why)};
    if (!checked.kind) {
      add.error({file, 0, 0, "", why});
      report.files.push_back(checked);
      continue;
    }
    cli::check_findings found = check_one(file, *checked.kind);
    add.findings(file, found);
    checked.ok = found.ok();
    report.files.push_back(checked);
  }
  return report;
}

void print_text(const check_report& report, std::ostream& out, std::ostream& err) {
  for (const auto& d : report.errors) err << d.to_string() << "\n";
  for (auto d : report.warnings) {
    d.message = "warning: " + d.message;
    err << d.to_string() << "\n";
  }
  for (const auto& s : report.insecure)
    err << s.file << ": warning: " << s.owner_kind << " " << s.owner << ": " << s.setting << ": "
        << s.effect << "\n";
  const std::size_t failed = std::count_if(report.files.begin(), report.files.end(),
                                           [](const checked_file& f) { return !f.ok; });
  const std::size_t n = report.files.size();
  const std::string files = std::to_string(n) + (n == 1 ? " file" : " files");
  if (report.ok())
    out << "configuration OK: " << files << "\n";
  else
    out << report.errors.size() << (report.errors.size() == 1 ? " error" : " errors") << ", "
        << failed << " of " << files << " would not load\n";
}

namespace {

void write_diagnostics(cli::json_writer& json, const char* key,
                       const std::vector<conf::diagnostic>& list) {
  json.begin_array(key);
  for (const auto& d : list) {
    json.begin_object().string("file", d.file).number("line", d.line).number("column", d.column);
    json.string("key", d.key_path).string("message", d.message).end_object();
  }
  json.end_array();
}

}  // namespace

void print_json(const check_report& report, std::ostream& out) {
  cli::json_writer json;
  json.begin_object().boolean("ok", report.ok()).begin_array("files");
  for (const auto& f : report.files) {
    json.begin_object().string("file", f.file);
    json.string("kind", f.kind ? to_string(*f.kind) : "unknown").boolean("ok", f.ok).end_object();
  }
  json.end_array();
  write_diagnostics(json, "errors", report.errors);
  write_diagnostics(json, "warnings", report.warnings);
  json.begin_array("insecure");
  for (const auto& s : report.insecure) {
    json.begin_object().string("file", s.file).string(s.owner_kind, s.owner);
    json.string("setting", s.setting).string("effect", s.effect).end_object();
  }
  json.end_array().end_object();
  out << json.text() << "\n";
}

}  // namespace postern::admin
