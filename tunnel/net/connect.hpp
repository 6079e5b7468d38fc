#pragma once
/// Connecting to an upstream address (host:port or unix:/path) within a deadline.

#include <string>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "conf/endpoint.hpp"
#include "conf/units.hpp"

namespace postern::net {

struct connect_result {
  int fd = -1;  ///< connected socket, owned by the caller; -1 on failure
  bool timed_out = false;
  std::string error;  ///< every failed attempt, "addr: reason; ..."
};

/// Resolves `target` and tries each address in turn; the whole attempt, resolution
/// included, is bounded by `timeout`.
asio::awaitable<connect_result> async_connect_to(asio::any_io_executor ex,
                                                 const conf::address& target,
                                                 conf::duration timeout);

}  // namespace postern::net
