#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "cli/log.hpp"
#include "tunnel/net/child_process.hpp"
#include "tunnel/net/secret_source.hpp"

using namespace postern;
using namespace std::chrono_literals;

namespace {

net::child_result run(net::child_spec spec) {
  asio::io_context ctx;
  net::child_result out;
  asio::co_spawn(ctx, net::async_run_child(ctx.get_executor(), spec),
                 [&](std::exception_ptr e, net::child_result r) {
                   REQUIRE_FALSE(e);
                   out = std::move(r);
                 });
  ctx.run();
  return out;
}

net::child_spec shell(const std::string& script, conf::duration timeout = 5s) {
  net::child_spec spec;
  spec.argv = {"/bin/sh", "-c", script};
  spec.timeout = timeout;
  return spec;
}

}  // namespace

TEST_CASE("a child's output and exit status are captured") {
  auto r = run(shell("echo out; echo err >&2; exit 3"));
  CHECK(r.started);
  CHECK(r.exit_status == 3);
  CHECK(r.out == "out\n");
  CHECK(r.err == "err\n");
  CHECK(r.describe(5s) == "exit status 3");
}

TEST_CASE("a child sees no descriptor of ours beyond 0, 1 and 2") {
  int leaked = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  REQUIRE(leaked > 2);
  auto r = run(shell("cd /proc/self/fd && echo *"));
  ::close(leaked);
  CHECK(r.exit_status == 0);
  // The shell's glob runs in the child itself: 0 1 2 and the directory it is reading.
  CHECK((r.out == "0 1 2\n" || r.out == "0 1 2 3\n"));
}

TEST_CASE("a child that runs past its deadline is killed") {
  auto started = std::chrono::steady_clock::now();
  auto r = run(shell("sleep 30", 300ms));
  CHECK(r.timed_out);
  CHECK_FALSE(r.succeeded());
  CHECK(std::chrono::steady_clock::now() - started < 5s);
  CHECK(r.describe(300ms) == "timed out after 300ms and was killed");
}

TEST_CASE("a child that leaves a process behind on its stdout still finishes") {
  auto started = std::chrono::steady_clock::now();
  auto r = run(shell("sleep 30 & echo pw", 20s));
  CHECK(r.succeeded());
  CHECK(r.out == "pw\n");
  CHECK(std::chrono::steady_clock::now() - started < 5s);
}

TEST_CASE("output beyond the bound is dropped, not buffered") {
  auto spec = shell("head -c 1000000 /dev/zero");
  spec.max_output = 1000;
  auto r = run(spec);
  CHECK(r.succeeded());
  CHECK(r.out.size() == 1000);
}

TEST_CASE("a program that cannot be run says why") {
  net::child_spec spec;
  spec.argv = {"/nonexistent/helper"};
  auto r = run(spec);
  CHECK_FALSE(r.started);
  CHECK(r.describe(5s) == "cannot run: No such file or directory");
}

TEST_CASE("password_command: first stdout line; stderr logged without the password") {
  std::vector<std::string> lines;
  auto& lg = log::logger::instance();
  lg.set_timestamps(false);
  lg.set_sink([&](std::string_view l) { lines.emplace_back(l); });
  auto get = [](std::vector<std::string> argv, std::string& error) {
    asio::io_context ctx;
    std::optional<conf::secret> out;
    const std::string owner = "box@pec.it";  // the coroutine holds a reference to it
    asio::co_spawn(ctx, net::async_password_command(argv, owner, 2s, error),
                   [&](std::exception_ptr e, std::optional<conf::secret> s) {
                     REQUIRE_FALSE(e);
                     out = std::move(s);
                   });
    ctx.run();
    return out;
  };
  std::string error;
  auto s =
      get({"sh", "-c", "printf 'from-command\\nsecond\\n'; echo 'got from-command' >&2"}, error);
  REQUIRE(s);
  CHECK(s->reveal() == "from-command");
  REQUIRE(lines.size() == 1);
  CHECK(lines[0] ==
        "level=warn event=password_command.stderr owner=box@pec.it program=sh "
        "stderr=\"got <redacted>\\n\"\n");
  CHECK_FALSE(get({"sh", "-c", "echo leaked; exit 3"}, error));
  CHECK(error == "password_command sh failed (exit status 3)");
  CHECK_FALSE(get({"/nonexistent/pw"}, error));
  CHECK(error == "password_command /nonexistent/pw: cannot run: No such file or directory");
  CHECK_FALSE(get({"sleep", "10"}, error));
  CHECK(error == "password_command sleep failed (timed out after 2s and was killed)");
  lg.set_sink(nullptr);
}
