// postern: the admin command of the suite (check the host's configurations; probe, receipts
// and import follow).
#include <iostream>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "cli/admin/check.hpp"
#include "cli/admin/probe.hpp"
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

struct probe_options {
  std::string target;
  std::string registry = POSTERN_SYSCONFDIR "/mailboxes.toml";
  bool smtp = false, pop3 = false, json = false, auth = false, trace = false;
  std::string ca_file, ehlo = "postern-probe.invalid", timeout = "15s";
};

void add_probe(CLI::App& app, probe_options& o) {
  auto* probe = app.add_subcommand(
      "probe",
      "Connect to a mailbox's provider (its smtp and pop3 endpoints in the registry) or to a "
      "URL, and show each step with timings: addresses, TLS and the whole chain, the "
      "verification, the capabilities, and with --auth each login. Nothing is sent that "
      "changes anything. Exit 0 fine, 69 unreachable or refused, 76 TLS or verification "
      "failed, 77 login refused.");
  probe
      ->add_option("TARGET", o.target,
                   "A mailbox address of the registry, or a URL "
                   "(smtps://, smtp+starttls://, pop3s://, pop3+starttls://)")
      ->required();
  probe
      ->add_option("-m,--mailboxes", o.registry,
                   "The mailbox registry (default " POSTERN_SYSCONFDIR "/mailboxes.toml)")
      ->capture_default_str()
      ->option_text("PATH");
  probe->add_flag("--smtp", o.smtp, "Only the mailbox's smtp endpoint");
  probe->add_flag("--pop3", o.pop3, "Only the mailbox's pop3 endpoint");
  probe->add_option("--ca-file", o.ca_file,
                    "For a URL: trusted CA certificates (PEM); default: system store");
  probe->add_option("--ehlo", o.ehlo, "Name for EHLO")->capture_default_str();
  probe->add_option("--timeout", o.timeout, "Bound of each phase (connect, TLS, each reply)")
      ->capture_default_str();
  probe->add_flag("--auth", o.auth,
                  "Also log in with each mechanism offered, in turn (a mailbox's login and "
                  "password; exit 77 when every login is refused)");
  probe->add_flag("--trace", o.trace,
                  "The dialogue on stderr (C: sent, S: received), credentials redacted");
  probe->add_flag("--json", o.json, "One JSON document on stdout instead of text");
}

int run_probe(const probe_options& o) {
  if (o.smtp && o.pop3) {
    std::cerr << "postern probe: --smtp and --pop3 exclude each other (give neither for both)\n";
    return exit_code::usage;
  }
  std::string error;
  auto timeout = conf::parse_duration(o.timeout, &error);
  if (!timeout) {
    std::cerr << "postern probe: --timeout: " << error << "\n";
    return exit_code::usage;
  }
  std::optional<conf::mailbox_registry> registry;
  if (o.auth && o.target.find("://") != std::string::npos) {
    std::cerr << "postern probe: --auth logs in as a mailbox of the registry (its login and "
                 "password source): name the mailbox, not a URL\n";
    return exit_code::usage;
  }
  if (!o.ca_file.empty() && o.target.find("://") == std::string::npos) {
    std::cerr << "postern probe: --ca-file is for a URL; a mailbox is verified with its own "
                 "ca_file from the registry\n";
    return exit_code::usage;
  }
  if (o.target.find("://") == std::string::npos) {
    conf::diagnostics diags;
    registry = conf::load_mailbox_registry(o.registry, diags);
    cli::print_diagnostics(diags, std::cerr);
    if (!registry) return exit_code::config;
  }
  std::vector<admin::probe_request> requests;
  if (!admin::probe_requests(o.target, registry ? &*registry : nullptr,
                             o.smtp ? "smtp" : (o.pop3 ? "pop3" : ""), requests, error)) {
    std::cerr << "postern probe: " << error << "\n";
    return registry ? exit_code::config : exit_code::usage;
  }
  std::vector<admin::probe_result> results;
  asio::io_context ctx;
  for (auto& request : requests) {
    if (!registry) request.tls.ca_file = o.ca_file;
    request.hello_name = o.ehlo;
    request.auth = o.auth;
    request.trace = o.trace;
    request.timeout = *timeout;
    asio::co_spawn(ctx, admin::probe(ctx.get_executor(), request),
                   [&results](std::exception_ptr e, admin::probe_result r) {
                     if (e) std::rethrow_exception(e);
                     results.push_back(std::move(r));
                   });
    ctx.run();
    ctx.restart();
  }
  int status = exit_code::ok;
  for (const auto& r : results) {
    if (!o.json) admin::print_probe_text(r, std::cout);
    if (status == exit_code::ok) status = admin::exit_status(r.outcome);
  }
  if (o.json) admin::print_probe_json(results, std::cout);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  cli::start_program();
  CLI::App app{
      "postern: check the configurations of the postern programs on this host, and "
      "probe the providers they reach.",
      "postern"};
  app.footer(
      "Exit status: 0 ok, 64 usage, 69 unreachable, 76 TLS or verification, 77 login "
      "refused, 78 configuration error.\nSee postern(1), "
      "postern-tunnel(1), postern-forwarder(1) and postern-fetch(1).");
  app.set_version_flag("--version", cli::version_text("postern"));
  app.require_subcommand(1);
  check_options check;
  add_check(app, check);
  probe_options probe;
  add_probe(app, probe);
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
  if (app.got_subcommand("probe")) return run_probe(probe);
  return run_check(check);
}
