#pragma once
/// Supervised child processes (password_command, fetch's exec: target): started without a
/// shell and without any descriptor of ours beyond 0, 1 and 2, their output read off the
/// event loop with a bound on its size, the whole run under one deadline after which the
/// child is killed. Nothing here blocks the loop.

#include <cstddef>
#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "conf/units.hpp"

namespace postern::net {

struct child_spec {
  std::vector<std::string> argv;  ///< argv[0]: a path, or a name looked up in PATH
  int stdin_fd = -1;              ///< given to the child as its stdin; -1 = /dev/null
  bool capture_stdout = true;     ///< else the child's stdout is ours
  bool capture_stderr = true;     ///< else the child's stderr is ours (the journal)
  std::size_t max_output =
      64 * 1024;  ///< bytes kept of each captured stream; more is read and dropped
  conf::duration timeout{std::chrono::seconds(10)};  ///< for the whole run; then SIGKILL
};

struct child_result {
  bool started = false;    ///< false: `error` says why it could not be run
  bool timed_out = false;  ///< killed at the deadline
  int exit_status = -1;    ///< when it exited
  int signal = 0;          ///< when a signal ended it
  std::string out, err;    ///< captured output (the caller wipes `out` if it holds a secret)
  std::string error;

  [[nodiscard]] bool succeeded() const { return started && !timed_out && exit_status == 0; }
  /// "exit status 3", "killed by signal 9", "timed out after 10s and was killed",
  /// "cannot run: No such file or directory".
  [[nodiscard]] std::string describe(conf::duration timeout) const;
};

/// Runs `spec` to completion (or its deadline). The child gets default signal dispositions
/// and an empty signal mask, and closes every descriptor above 2 before exec.
asio::awaitable<child_result> async_run_child(asio::any_io_executor ex, const child_spec& spec);

/// Marks a descriptor close-on-exec (sockets made by Asio are not).
void set_cloexec(int fd);

}  // namespace postern::net
