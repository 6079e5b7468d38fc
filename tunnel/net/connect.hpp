#pragma once
/// Connecting to an upstream address (host:port or unix:/path) within a deadline, and to the
/// first reachable of several (failover). The one connect of postern: the tunnel, the SMTP
/// client and the POP3 client all use it.

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "conf/endpoint.hpp"
#include "conf/units.hpp"

namespace postern::net {

/// One address tried, for `postern probe`.
struct connect_attempt {
  std::string address;  ///< "192.0.2.7:465", "[2001:db8::7]:465" or the unix path
  std::chrono::microseconds took{};
  std::string error;  ///< "" when it connected
};

/// How a connect went, step by step, for whoever asks for it (`postern probe`); the programs'
/// own connects do not pay for it.
struct connect_trail {
  std::chrono::microseconds resolve_took{};  ///< the name's resolution (0 for a unix path)
  std::vector<connect_attempt> attempts;     ///< each address in the order tried
};

struct connect_result {
  int fd = -1;  ///< connected socket, owned by the caller; -1 on failure
  bool timed_out = false;
  std::string error;  ///< every failed attempt, "addr: reason; ..."
};

/// Resolves `target` and tries each address in turn; the whole attempt, resolution
/// included, is bounded by `timeout`. With `trail`, each step is recorded there (it must
/// outlive the coroutine).
asio::awaitable<connect_result> async_connect_to(asio::any_io_executor ex,
                                                 const conf::address& target,
                                                 conf::duration timeout,
                                                 connect_trail* trail = nullptr);

struct connect_any_result : connect_result {
  std::size_t index = 0;  ///< of the target reached, when fd >= 0
};

/// Tries the targets in order from `first` (wrapping around), each bounded by `per_target`,
/// until one connects; `error` names every failed attempt.
asio::awaitable<connect_any_result> async_connect_any(asio::any_io_executor ex,
                                                      const std::vector<conf::address>& targets,
                                                      std::size_t first, conf::duration per_target);

}  // namespace postern::net
