#include "tunnel/net/child_process.hpp"
#include "tunnel/net/deadline.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

extern char** environ;

namespace postern::net {

using asio::awaitable;
using asio::use_awaitable;
using asio::experimental::as_tuple;
using namespace asio::experimental::awaitable_operators;

void set_cloexec(int fd) {
  int flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

std::string child_result::describe(conf::duration timeout) const {
  if (!started) return "cannot run: " + error;
  if (timed_out) return "timed out after " + conf::format_duration(timeout) + " and was killed";
  if (signal) return "killed by signal " + std::to_string(signal);
  return "exit status " + std::to_string(exit_status);
}

namespace {

/// A pipe whose read end we keep (close-on-exec) and whose write end the child gets.
struct pipe_pair {
  int read = -1, write = -1;
  bool open(std::string& error) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      error = std::string("pipe: ") + std::strerror(errno);
      return false;
    }
    read = fds[0];
    write = fds[1];
    return true;
  }
  void close_write() {
    if (write >= 0) ::close(write);
    write = -1;
  }
  ~pipe_pair() {
    close_write();
    if (read >= 0) ::close(read);
  }
};

/// What the deadline must reach: the child and the pipes being read.
struct run_state {
  explicit run_state(const asio::any_io_executor& ex)
      : out(ex), err(ex), timer(ex, [this] {
          if (!try_reap()) {
            expired = true;
            ::kill(pid, SIGKILL);
          }
          close_pipes();  // a grandchild may still hold them open
        }) {}
  asio::posix::stream_descriptor out, err;
  pid_t pid = -1;
  bool expired = false;  ///< the deadline passed while the child still ran
  bool reaped = false;
  int wstatus = 0;

  int open_streams = 2;
  deadline timer;  ///< last: it goes first, before what its expiry touches

  bool try_reap() {
    if (!reaped && ::waitpid(pid, &wstatus, WNOHANG) == pid) reaped = true;
    return reaped;
  }
  void close_pipes() {
    std::error_code ignored;
    out.close(ignored);
    err.close(ignored);
  }
};

awaitable<void> drain(run_state& st, asio::posix::stream_descriptor& d, std::string& into,
                      std::size_t max) {
  char buf[4096];
  while (d.is_open()) {
    auto [ec, n] = co_await d.async_read_some(asio::buffer(buf), as_tuple(use_awaitable));
    if (ec) break;
    if (into.size() < max) into.append(buf, std::min(n, max - into.size()));
  }
  std::memset(buf, 0, sizeof buf);  // it may have held a password
  --st.open_streams;
}

/// Waits for the child's exit by polling (a child has no descriptor to wait on without
/// pidfd, which older kernels lack): at most 20 ms late. Once it has exited, whatever it
/// left running may keep our pipes open: their reading stops shortly after.
awaitable<void> watch_exit(run_state& st, child_result& r) {
  asio::steady_timer tick(st.out.get_executor());
  auto interval = std::chrono::milliseconds(1);
  int after_kill = 0;
  while (!st.try_reap() && after_kill < 200) {
    if (st.expired) ++after_kill;
    tick.expires_after(interval);
    co_await tick.async_wait(as_tuple(use_awaitable));
    interval = std::min(interval * 2, std::chrono::milliseconds(20));
  }
  if (st.reaped) {
    if (WIFEXITED(st.wstatus)) r.exit_status = WEXITSTATUS(st.wstatus);
    if (WIFSIGNALED(st.wstatus)) r.signal = WTERMSIG(st.wstatus);
  }
  for (int i = 0; i < 20 && st.open_streams > 0; ++i) {
    tick.expires_after(std::chrono::milliseconds(10));
    co_await tick.async_wait(as_tuple(use_awaitable));
  }
  st.close_pipes();
}

}  // namespace

awaitable<child_result> async_run_child(asio::any_io_executor ex, const child_spec& spec) {
  child_result r;
  if (spec.argv.empty()) {
    r.error = "no program given";
    co_return r;
  }
  pipe_pair out, err;
  if ((spec.capture_stdout && !out.open(r.error)) || (spec.capture_stderr && !err.open(r.error)))
    co_return r;
  int null_fd = -1;
  if (spec.stdin_fd < 0) null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const int input = spec.stdin_fd >= 0 ? spec.stdin_fd : null_fd;
  if (input >= 0) posix_spawn_file_actions_adddup2(&actions, input, STDIN_FILENO);
  if (out.write >= 0) posix_spawn_file_actions_adddup2(&actions, out.write, STDOUT_FILENO);
  if (err.write >= 0) posix_spawn_file_actions_adddup2(&actions, err.write, STDERR_FILENO);
  // Whatever a descriptor's flags, the child sees only 0, 1 and 2: a helper that leaves a
  // process behind must not keep a listening socket or a session open.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGPIPE, SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGCHLD}) sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> args;
  for (const auto& a : spec.argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  auto st = std::make_shared<run_state>(ex);
  int rc = ::posix_spawnp(&st->pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (null_fd >= 0) ::close(null_fd);
  out.close_write();
  err.close_write();
  if (rc != 0) {
    r.error = std::strerror(rc);
    co_return r;
  }
  r.started = true;
  std::error_code ignored;
  if (out.read >= 0) {
    st->out.assign(out.read, ignored);
    out.read = -1;
  }
  if (err.read >= 0) {
    st->err.assign(err.read, ignored);
    err.read = -1;
  }
  st->timer.arm_after(spec.timeout);
  co_await (drain(*st, st->out, r.out, spec.max_output) &&
            drain(*st, st->err, r.err, spec.max_output) && watch_exit(*st, r));
  r.timed_out = st->expired;
  st->timer.disarm();
  co_return r;
}

}  // namespace postern::net
