// Runs one of the server's coroutines to its end on an io_context of its
// own, on the calling thread (completions from the log's and the
// projector's threads are posted to it).
#pragma once

#include <exception>
#include <optional>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

namespace a3::test {

template <typename T>
T run_sync(boost::asio::awaitable<T> a) {
  boost::asio::io_context io;
  std::optional<T> out;
  boost::asio::co_spawn(io, std::move(a), [&](std::exception_ptr e, T v) {
    if (e) std::rethrow_exception(e);
    out = std::move(v);
  });
  io.run();
  return std::move(*out);
}

inline void run_sync(boost::asio::awaitable<void> a) {
  boost::asio::io_context io;
  boost::asio::co_spawn(io, std::move(a), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
}

}  // namespace a3::test
