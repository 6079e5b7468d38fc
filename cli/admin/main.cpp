// postern: the admin command of the suite (check the host's configurations; probe, receipts
// and import follow).
#include <iostream>

#include "cli/admin/check.hpp"
#include "cli/exit_codes.hpp"
#include "cli/options.hpp"
#include "cli/program.hpp"
#include "postern/version.hpp"

namespace {

using namespace postern;

struct check_options {
  std::vector<std::string> files;
  std::string dir = POSTERN_SYSCONFDIR;
  bool json = false;
};

void add_check(CLI::App& app, check_options& o) {
  auto* check = app.add_subcommand(
      "check",
      "Check every postern configuration of this host (default: each *.toml in " POSTERN_SYSCONFDIR
      " and the registry they name) with the loaders the programs use: all errors at once, "
      "then warnings and insecure settings. Exit 0, or 78 when something would not load.");
  check->add_option("FILE", o.files, "Files to check instead of the directory's")
      ->check(CLI::ExistingFile);
  check->add_option("-C,--directory", o.dir, "Directory whose *.toml files are checked")
      ->capture_default_str()
      ->option_text("DIR");
  check->add_flag("--json", o.json, "One JSON document on stdout instead of text");
}

int run_check(check_options& o) {
  if (o.files.empty()) {
    std::string error;
    if (!admin::config_files_in(o.dir, o.files, error)) {
      std::cerr << "postern check: " << error << "\n";
      return exit_code::config;
    }
  }
  admin::check_report report = admin::check_files(o.files);
  if (o.json)
    admin::print_json(report, std::cout);
  else
    admin::print_text(report, std::cout, std::cerr);
  return report.ok() ? exit_code::ok : exit_code::config;
}

}  // namespace

int main(int argc, char** argv) {
  cli::start_program();
  CLI::App app{"postern: check the configurations of the postern programs on this host.",
               "postern"};
  app.footer(
      "Exit status: 0 ok, 64 usage, 78 configuration error.\nSee postern(1), "
      "postern-tunnel(1), postern-forwarder(1) and postern-fetch(1).");
  app.set_version_flag("--version", cli::version_text("postern"));
  app.require_subcommand(1);
  check_options check;
  add_check(app, check);
  app.add_subcommand("version", "Print the version and the TLS library");
  if (auto stop = cli::parse_command_line(app, argc, argv)) return *stop;
  // What the loaders and verification log is in the report already.
  cli::common_options quiet;
  quiet.quiet = true;
  cli::apply_logging(quiet);
  if (app.got_subcommand("version")) {
    std::cout << cli::version_text("postern") << "\n";
    return exit_code::ok;
  }
  return run_check(check);
}
