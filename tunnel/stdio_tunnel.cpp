#include "stdio_tunnel.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <asio/io_context.hpp>

#include "cli/exit_codes.hpp"
#include "cli/log.hpp"
#include "conf/secret.hpp"
#include "conf/units.hpp"
#include "connection.hpp"

namespace postern::tunnel {

bool make_stdio_service(const stdio_options& opts, conf::tunnel_service& out,
                        std::vector<std::string>& errors) {
  std::string error;
  auto url = conf::parse_endpoint(opts.connect_url, &error);
  if (!url) {
    errors.push_back("--connect: " + error);
    return false;
  }
  if (url->tls == conf::tls_mode::none) {
    errors.push_back("--connect: " + opts.connect_url +
                     " is cleartext; --stdio needs TLS (tls://, smtps://, smtp+starttls://, "
                     "pop3s://, pop3+starttls://, imaps://, imap+starttls://)");
    return false;
  }
  out.name = "stdio";
  out.mode = conf::tunnel_mode::client;
  out.connect = {url->addr};
  if (url->tls == conf::tls_mode::starttls) out.starttls = url->protocol;
  out.starttls_hostname = opts.starttls_hostname;
  out.tls = opts.tls;
  out.tls.verify = opts.verify == "none" ? conf::verify_mode::none : conf::verify_mode::full;
  out.tls.min_version =
      opts.tls_min == "1.3" ? conf::tls_version::tls1_3 : conf::tls_version::tls1_2;
  out.timeouts = opts.timeouts;
  for (auto [text, target, name] :
       {std::tuple{&opts.connect_timeout, &out.timeouts.connect, "--connect-timeout"},
        {&opts.handshake_timeout, &out.timeouts.handshake, "--handshake-timeout"},
        {&opts.idle_timeout, &out.timeouts.idle, "--idle-timeout"}}) {
    if (text->empty()) continue;
    if (auto d = conf::parse_duration(*text, &error))
      *target = *d;
    else
      errors.push_back(std::string(name) + ": " + error);
  }
  if (out.tls.cert_file.empty() != out.tls.key_file.empty())
    errors.push_back("--cert-file and --key-file go together");
  if (!out.tls.key_file.empty())
    if (auto problem = conf::check_private_file(out.tls.key_file); !problem.empty())
      errors.push_back("--key-file: " + problem);
  return errors.empty();
}

int run_stdio(const conf::tunnel_service& service) {
  std::string error;
  auto runtime = std::make_shared<service_runtime>();
  runtime->config = service;
  runtime->tls = net::tls_context::create(service.tls, service.mode, error);
  if (!runtime->tls) {
    log::error("config.error", {{"error", error}});
    return exit_code::config;
  }
  if (service.tls.verify == conf::verify_mode::none)
    log::warn("config.insecure",
              {{"setting", "--verify none"}, {"effect", "the server certificate is NOT verified"}});
  asio::io_context ctx(1);
  int in = ::fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3),
      out = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
  runtime->try_acquire();
  auto conn = std::make_shared<connection>(ctx.get_executor(), runtime, in, out);
  conn->start();
  ctx.run();
  return exit_code_for(conn->result().value_or(outcome::error));
}

}  // namespace postern::tunnel
