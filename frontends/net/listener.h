// What every protocol's server shares: listening sockets with connection
// limits (total and per client IP), one strand per connection, the
// per-connection watchdog (every phase has a deadline), and closing it all
// on stop.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio.hpp>

#include "common/config.h"
#include "common/network.h"
#include "frontends/net/conn.h"

namespace a3::net {

using Strand = boost::asio::strand<boost::asio::io_context::executor_type>;

// One client connection: its stream and deadline. A server may derive from
// it to keep more per-connection state.
struct Connection {
  Connection(boost::asio::ip::tcp::socket s, Strand ex)
      : strand(ex), conn(std::move(s)), timer(ex), write_done(ex) {}
  virtual ~Connection() = default;
  // On the strand: close the socket and wake every waiter.
  virtual void close();
  // On the strand: the watchdog closes the connection at `at`. An earlier
  // deadline than the one it sleeps towards wakes it to re-arm.
  void set_deadline(std::chrono::steady_clock::time_point at);

  Strand strand;
  Conn conn;
  std::chrono::steady_clock::time_point deadline;
  bool done = false;
  boost::asio::steady_timer timer;  // the watchdog's
  // net::write: one write at a time (on the strand).
  boost::asio::steady_timer write_done;  // cancelled when a write finishes
  bool writing = false;
  // The graceful stop: between commands a session gets `goodbye` and is
  // closed; a busy one (a command in hand) finishes it first.
  bool greeted = false;  // the greeting went out (and TLS, if implicit)
  bool busy = false;     // a command is being answered
  bool stopping = false;
  std::string goodbye;
};

// Closes the connection when its deadline passes; readers move the deadline
// (per-phase timeouts, never one for the whole connection). Stops once
// `done` is set and the timer cancelled.
boost::asio::awaitable<void> watchdog(std::shared_ptr<Connection> c);

class Listeners {
 public:
  // Runs one session; the socket is already counted against the limits.
  using Serve = std::function<boost::asio::awaitable<void>(boost::asio::ip::tcp::socket, Strand)>;

  // `busy` is what a refused client reads ("421 4.7.0 Too many
  // connections\r\n", "* BYE ..."), `goodbye` what a session gets when the
  // server stops ("421 4.3.2 ...", "* BYE ...").
  Listeners(boost::asio::io_context& io, const config::Security& security, std::string name,
            std::string busy, std::string goodbye);

  // Binds and accepts; throws std::runtime_error naming the address, or
  // the missing certificate of an implicit-TLS listener.
  void listen(const config::Listener& listener, bool have_tls, Serve serve);
  // The networks refused at accept, before TLS or a greeting (SIGHUP
  // replaces them; connections already open stay).
  void set_blocked(std::vector<Network> networks);
  // SIGHUP: the connection limits and blocked networks of `security`.
  void set_limits(const config::Security& security);
  // Connections register so that stop() can close them; false once stopping.
  bool track(const std::shared_ptr<Connection>& c);
  // Closes the listeners; each session says goodbye and closes once its
  // command in hand is answered (on its own strand).
  void stop();
  // Closes every connection now (when the graceful stop took too long).
  void abort();

 private:
  boost::asio::io_context& io_;
  std::atomic<int> max_connections_, max_per_ip_;
  std::string name_, busy_, goodbye_;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> acceptors_;
  // Shared with the sessions' completion handlers, which may run after
  // this object is gone.
  struct Counts {
    std::mutex mu;
    std::size_t connections = 0;
    std::map<boost::asio::ip::address, std::size_t> per_ip;
  };
  std::shared_ptr<Counts> counts_ = std::make_shared<Counts>();
  std::shared_ptr<const std::vector<Network>> blocked_;  // std::atomic_load/store
  std::mutex mu_;
  std::vector<std::weak_ptr<Connection>> live_;  // guarded by mu_
  bool stopping_ = false;                        // guarded by mu_
};

}  // namespace a3::net
