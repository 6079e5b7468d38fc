// Test driver for fetch::pop3_client until postern-fetch exists: logs in to a POP3 URL,
// lists with UIDL and writes every message to OUTDIR/<uid>.eml (streamed), optionally marks
// them deleted, then QUITs. Exit 0 on success, 69 on failure with the reason on stderr.
//   pop3_dump URL CA_FILE LOGIN PASSWORD_FILE OUTDIR [dele]
#include <fstream>
#include <iostream>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "fetch/pop3_client.hpp"

using namespace postern;

namespace {

asio::awaitable<int> run(fetch::pop3_client& client, std::string outdir, bool dele) {
  auto r = co_await client.async_open();
  if (!r.ok()) {
    std::cerr << "open: " << smtp::to_string(r.kind) << ": " << r.detail << " " << r.server << "\n";
    co_return 69;
  }
  fetch::uid_listing uids;
  r = co_await client.async_uidl(uids);
  if (!r.ok()) {
    std::cerr << "uidl: " << r.detail << " " << r.server << "\n";
    co_return 69;
  }
  for (std::size_t i = 0; i < uids.size(); ++i) {
    std::ofstream out(outdir + "/" + std::string(uids.uid(i)) + ".eml", std::ios::binary);
    r = co_await client.async_retr(
        uids.number(i), [&](const std::string& bytes) -> asio::awaitable<bool> {
          out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
          co_return static_cast<bool>(out);
        });
    if (!r.ok()) {
      std::cerr << "retr: " << r.detail << " " << r.server << "\n";
      co_return 69;
    }
    if (dele) {
      r = co_await client.async_dele(uids.number(i));
      if (!r.ok()) co_return 69;
    }
  }
  r = co_await client.async_quit();
  std::cout << uids.size() << " messages\n";
  co_return r.ok() ? 0 : 69;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::cerr << "usage: pop3_dump URL CA_FILE LOGIN PASSWORD_FILE OUTDIR [dele]\n";
    return 64;
  }
  fetch::pop3_params p;
  std::string error;
  auto ep = conf::parse_endpoint(argv[1], &error);
  if (!ep) {
    std::cerr << error << "\n";
    return 64;
  }
  p.endpoint = *ep;
  conf::tls_settings tls;
  tls.ca_file = argv[2];
  p.tls = net::tls_context::create(tls, conf::tunnel_mode::client, error);
  if (!p.tls) {
    std::cerr << error << "\n";
    return 78;
  }
  p.login = argv[3];
  std::string password_file = argv[4];
  p.password = [password_file](std::string& e) -> asio::awaitable<std::optional<conf::secret>> {
    co_return conf::read_password_file(password_file, &e);
  };
  asio::io_context ctx;
  fetch::pop3_client client(ctx.get_executor(), p);
  int code = 70;
  asio::co_spawn(ctx, run(client, argv[5], argc > 6 && std::string(argv[6]) == "dele"),
                 [&](std::exception_ptr e, int rc) { code = e ? 70 : rc; });
  ctx.run();
  return code;
}
