#pragma once
/// Listening sockets for every postern server: host:port (SO_REUSEPORT, so instances can
/// share a port), unix:/path (a stale socket file is replaced, a live one is not stolen),
/// and systemd:NAME (socket activation).

#include <string>

#include <asio/basic_socket_acceptor.hpp>
#include <asio/generic/stream_protocol.hpp>

#include "conf/endpoint.hpp"

namespace postern::net {

using generic_acceptor = asio::basic_socket_acceptor<asio::generic::stream_protocol>;

/// Opens, binds and listens; on failure `error` starts with "KEY = ADDRESS: ".
bool open_listen_socket(generic_acceptor& acceptor, const conf::address& a, const std::string& key,
                        std::string& error);
/// Stops listening; systemd's sockets are released (a later reload may use them again) and
/// unix socket files removed.
void close_listen_socket(generic_acceptor& acceptor, const conf::address& a);

}  // namespace postern::net
