#pragma once
// Runs one test coroutine on an io_context of its own to its end (at most five seconds),
// rethrowing what it threw. The body gets the executor as a named lvalue (the coroutine rule
// of ARCHITECTURE.md) and must not co_await inside CHECK().
#include <chrono>
#include <exception>

#include <catch2/catch.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

namespace postern::test {

template <class Body>
void run_coroutine(Body body) {
  asio::io_context io;
  bool finished = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        asio::any_io_executor ex = io.get_executor();
        co_await body(ex);
        finished = true;
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  io.run_for(std::chrono::seconds(5));
  REQUIRE(finished);
}

}  // namespace postern::test
