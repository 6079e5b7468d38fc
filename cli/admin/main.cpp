// postern: the admin command of the suite: check the host's configurations, probe a provider,
// and the PEC receipts of what the forwarder sent (import follows).
#include <algorithm>
#include <ctime>
#include <iostream>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "cli/admin/audit_reader.hpp"
#include "cli/admin/check.hpp"
#include "cli/admin/probe.hpp"
#include "cli/admin/receipts_index.hpp"
#include "cli/admin/receipts_report.hpp"
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

struct receipts_options {
  std::string forwarder_audit = "/var/log/postern/forwarder-audit.jsonl";
  std::string fetch_audit = "/var/log/postern/fetch-audit.jsonl";
  std::string index = "/var/lib/postern/receipts.sqlite";
  bool reindex = false, pending = false, json = false, csv = false;
  admin::receipts_filter filter;
  std::string since, until, status, accept_within = "30m", deliver_within = "24h";
};

void add_receipts(CLI::App& app, receipts_options& o) {
  auto* r = app.add_subcommand(
      "receipts",
      "The legal status of each PEC message sent through the forwarder: its audit joined with "
      "the receipts fetch recorded, per message and per recipient (delivered, partial, failed, "
      "pending, overdue, uncertain), and the receipts that match no submitted message. Exit 0, "
      "or 1 when a message listed is overdue.");
  r->add_option("--forwarder-audit", o.forwarder_audit, "The forwarder's audit file")
      ->capture_default_str();
  r->add_option("--fetch-audit", o.fetch_audit, "Fetch's audit file")->capture_default_str();
  r->add_option("--index", o.index, "The derived index (SQLite), updated from the audit files")
      ->capture_default_str();
  r->add_flag("--reindex", o.reindex, "Rebuild the index from the audit files");
  r->add_option("--message-id", o.filter.message_id, "Only this Message-ID (with <>)");
  r->add_option("--mailbox", o.filter.mailbox, "Only messages sent from this mailbox");
  r->add_option("--recipient", o.filter.recipient, "Only messages to this recipient");
  r->add_option("--since", o.since,
                "Submitted since: YYYY-MM-DD[THH:MM] (UTC) or a duration ago (7d)");
  r->add_option("--until", o.until, "Submitted before: the same forms");
  r->add_option("--status", o.status, "Only this status")
      ->check(CLI::IsMember({"delivered", "partial", "failed", "pending", "overdue", "uncertain"}));
  r->add_flag("--pending", o.pending,
              "What is not settled: pending, overdue and uncertain (the morning check)");
  r->add_option("--accept-within", o.accept_within, "Overdue without accettazione after this")
      ->capture_default_str();
  r->add_option("--deliver-within", o.deliver_within,
                "Overdue without every delivery receipt this long after acceptance")
      ->capture_default_str();
  r->add_flag("--json", o.json, "One JSON document instead of the table");
  r->add_flag("--csv", o.csv, "CSV, one row per recipient, instead of the table");
}

/// "2026-12-01", "2026-12-01T08:30" (UTC) or a duration before `now` ("7d").
std::optional<std::int64_t> parse_when(const std::string& text, std::int64_t now) {
  if (auto d = conf::parse_duration(text))
    return now - std::chrono::duration_cast<std::chrono::seconds>(*d).count();
  std::string full = text;
  if (full.size() == 10) full += "T00:00";
  if (full.size() == 16) full += ":00.000Z";
  return admin::parse_audit_time(full);
}

int run_receipts(receipts_options& o) {
  if (o.json && o.csv) {
    std::cerr << "postern receipts: --json and --csv exclude each other\n";
    return exit_code::usage;
  }
  const std::int64_t now = std::time(nullptr);
  for (auto [text, out] :
       {std::pair{&o.since, &o.filter.since}, std::pair{&o.until, &o.filter.until}})
    if (!text->empty() && !(*out = parse_when(*text, now))) {
      std::cerr << "postern receipts: \"" << *text
                << "\" is not a date (YYYY-MM-DD, YYYY-MM-DDTHH:MM, UTC) or a duration (7d)\n";
      return exit_code::usage;
    }
  admin::receipt_policy policy;
  for (auto [text, out] : {std::pair{&o.accept_within, &policy.accept_within},
                           std::pair{&o.deliver_within, &policy.deliver_within}}) {
    auto d = conf::parse_duration(*text);
    if (!d) {
      std::cerr << "postern receipts: \"" << *text << "\" is not a duration (30m, 24h)\n";
      return exit_code::usage;
    }
    *out = std::chrono::duration_cast<std::chrono::seconds>(*d).count();
  }
  o.filter.unsettled = o.pending;
  std::string error;
  auto index = admin::receipts_index::open(o.index, error);
  if (!index || (o.reindex && !index->reset(error))) {
    std::cerr << "postern receipts: " << error << "\n";
    return exit_code::oserr;
  }
  std::vector<std::string> problems;
  if (!index->ingest(o.forwarder_audit, admin::audit_kind::forwarder, problems, error) ||
      !index->ingest(o.fetch_audit, admin::audit_kind::fetch, problems, error)) {
    std::cerr << "postern receipts: " << error << "\n";
    return exit_code::oserr;
  }
  for (const auto& p : problems) std::cerr << "postern receipts: " << p << "\n";
  auto messages = index->messages(o.filter, now, policy, error);
  auto unmatched = index->unmatched(o.filter, error);
  if (!error.empty()) {
    std::cerr << "postern receipts: " << error << "\n";
    return exit_code::software;
  }
  std::erase_if(messages, [&](const admin::message_report& m) {
    const std::string status = admin::to_string(m.status);
    if (o.pending) return status != "pending" && status != "overdue" && status != "uncertain";
    return !o.status.empty() && status != o.status;
  });
  if (o.pending || !o.status.empty()) unmatched.clear();
  if (o.json)
    admin::print_receipts_json(messages, unmatched, std::cout);
  else if (o.csv)
    admin::print_receipts_csv(messages, std::cout);
  else
    admin::print_receipts_table(messages, unmatched, std::cout);
  const bool overdue = std::any_of(messages.begin(), messages.end(), [](const auto& m) {
    return m.status == admin::message_status::overdue;
  });
  return overdue ? 1 : exit_code::ok;
}

}  // namespace

int main(int argc, char** argv) {
  cli::start_program();
  CLI::App app{
      "postern: check the configurations of the postern programs on this host, probe the "
      "providers they reach, and say what became of every PEC message sent.",
      "postern"};
  app.footer(
      "Exit status: 0 ok, 1 receipts: a message is overdue, 64 usage, 69 unreachable, 71 "
      "cannot open the index or an audit file, 76 TLS or verification, 77 login refused, 78 "
      "configuration error.\nSee postern(1), "
      "postern-tunnel(1), postern-forwarder(1) and postern-fetch(1).");
  app.set_version_flag("--version", cli::version_text("postern"));
  app.require_subcommand(1);
  check_options check;
  add_check(app, check);
  probe_options probe;
  add_probe(app, probe);
  receipts_options receipts;
  add_receipts(app, receipts);
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
  if (app.got_subcommand("receipts")) return run_receipts(receipts);
  return run_check(check);
}
