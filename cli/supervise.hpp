#pragma once
/// Supervision of spawned coroutines: an exception escaping one is a bug, and it must be seen
/// (logged as an error, the connection ended with its summary line, the listener restarted)
/// rather than vanish into asio::detached.

#include <exception>
#include <functional>
#include <string>

namespace postern::cli {

/// The text of a caught exception ("unknown exception" for a non-std one).
std::string describe(const std::exception_ptr& e);

/// A co_spawn completion handler: when the coroutine ended with an exception, logs it as an
/// error `event` with `fields`' session (if any), then calls `after` with the description.
struct supervised {
  std::string event;
  std::string session;
  std::function<void(const std::string&)> after;

  void operator()(const std::exception_ptr& e) const;
};

}  // namespace postern::cli
