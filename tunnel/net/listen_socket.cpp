#include "tunnel/net/listen_socket.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>

#include "cli/service_manager.hpp"
#include "tunnel/net/child_process.hpp"

namespace postern::net {

using generic = asio::generic::stream_protocol;

bool open_listen_socket(generic_acceptor& acceptor, const conf::address& a, const std::string& key,
                        std::string& error) {
  std::error_code ec;
  if (a.kind == conf::address_kind::systemd) {
    const auto& sockets = cli::activated_sockets();
    auto it = sockets.find(a.path);
    if (it == sockets.end()) {
      error = key + " = systemd:" + a.path + ": no socket of that FileDescriptorName= was passed";
      return false;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(it->second, reinterpret_cast<sockaddr*>(&ss), &len);
    acceptor.assign(generic(ss.ss_family, SOCK_STREAM), it->second, ec);
  } else if (a.kind == conf::address_kind::unix_path) {
    asio::local::stream_protocol::endpoint ep(a.path);
    struct stat st {};
    if (::lstat(a.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      // A socket file left by a previous run is replaced; one that still answers is not ours.
      asio::local::stream_protocol::socket probe(acceptor.get_executor());
      std::error_code probe_ec;
      probe.connect(ep, probe_ec);
      if (!probe_ec) {
        error = key + " = " + a.to_string() + ": another process is listening on it";
        return false;
      }
      ::unlink(a.path.c_str());
    }
    acceptor.open(generic(AF_UNIX, SOCK_STREAM), ec);
    if (!ec) acceptor.bind(generic::endpoint(ep), ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  } else {
    asio::ip::tcp::resolver resolver(acceptor.get_executor());
    auto results =
        resolver.resolve(a.host, std::to_string(a.port), asio::ip::tcp::resolver::passive, ec);
    if (ec || results.empty()) {
      error = key + " = " + a.to_string() + ": cannot resolve: " + ec.message();
      return false;
    }
    generic::endpoint ep(results.begin()->endpoint());
    acceptor.open(ep.protocol(), ec);
    if (!ec) {
      acceptor.set_option(asio::socket_base::reuse_address(true));
      int one = 1;
      // More instances may share the port (zero-downtime restarts, scale-out).
      ::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
      acceptor.bind(ep, ec);
    }
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    error = key + " = " + a.to_string() + ": " + ec.message();
    std::error_code ignored;
    acceptor.close(ignored);
    return false;
  }
  set_cloexec(acceptor.native_handle());
  return true;
}

void close_listen_socket(generic_acceptor& acceptor, const conf::address& a) {
  std::error_code ignored;
  if (a.kind == conf::address_kind::systemd)
    acceptor.release(ignored);
  else
    acceptor.close(ignored);
  if (a.kind == conf::address_kind::unix_path) ::unlink(a.path.c_str());
}

}  // namespace postern::net
