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

// The connection limits of the whole daemon: one count of connections, in
// total and per client IP, across SMTP, IMAP and POP3 ([security]
// max_connections, max_connections_per_ip).
class ConnectionLimits {
 public:
  explicit ConnectionLimits(const config::Security& security) { set(security); }
  // SIGHUP: connections already open stay, even above a lowered limit.
  void set(const config::Security& security);
  // A slot for a connection from `ip`, released when the last copy is
  // destroyed; null when a limit is reached.
  std::shared_ptr<void> admit(const boost::asio::ip::address& ip);
  int max_total() const { return max_total_; }

 private:
  // Shared with the slots, which may outlive this object.
  struct Counts {
    std::mutex mu;
    std::size_t total = 0;
    std::map<boost::asio::ip::address, std::size_t> per_ip;
  };
  struct Slot;  // gives its connection back to the counts when destroyed
  std::shared_ptr<Counts> counts_ = std::make_shared<Counts>();
  std::atomic<int> max_total_{0}, max_per_ip_{0};
};

class Guard;

class Listeners {
 public:
  // Runs one session; the socket is already counted against the limits.
  // The address is the client's: the peer's, or on a proxy_protocol
  // listener the one its PROXY header names.
  using Serve = std::function<boost::asio::awaitable<void>(boost::asio::ip::tcp::socket, Strand,
                                                           boost::asio::ip::address)>;

  // `busy` is what a client over a connection limit reads ("421 4.7.0 Too
  // many connections\r\n", "* BYE ..."), `goodbye` what a session gets
  // when the server stops ("421 4.3.2 ...", "* BYE ..."). A blocked or
  // banned client (`guard`) reads nothing. One the access lists' countries
  // refuse reads `refused` and the reason ("* BYE ", "-ERR ..."); with no
  // `refused` (SMTP, whose session must answer until QUIT after its 554
  // greeting, RFC 5321 3.1), the server checks the country itself.
  Listeners(boost::asio::io_context& io, Guard& guard, std::string name, std::string busy,
            std::string goodbye, std::string refused = {});

  // Binds and accepts; throws std::runtime_error naming the address, or
  // the missing certificate of an implicit-TLS listener. On a
  // proxy_protocol listener, a connection from outside [security]
  // trusted_proxies, or whose header is malformed or late, is closed.
  void listen(const config::Listener& listener, bool have_tls, Serve serve);
  // The guard's checks for a client at `ip`, then its session (or the
  // busy line and a close).
  void start(boost::asio::ip::tcp::socket socket, const boost::asio::ip::address& ip,
             const Serve& serve);
  // Connections register so that stop() can close them; false once stopping.
  bool track(const std::shared_ptr<Connection>& c);
  // Closes the listeners; each session says goodbye and closes once its
  // command in hand is answered (on its own strand).
  void stop();
  // Closes every connection now (when the graceful stop took too long).
  void abort();

 private:
  boost::asio::io_context& io_;
  bool is_stopping();
  // Reads a trusted proxy's PROXY header, then start()s the session.
  // `waiting` counts the connection in waiting_headers_ until it is gone.
  static boost::asio::awaitable<void> proxied(Listeners* self, boost::asio::ip::tcp::socket socket,
                                              boost::asio::ip::address peer, Serve serve,
                                              std::shared_ptr<void> waiting);
  Guard& guard_;
  std::string name_, busy_, goodbye_, refused_;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> acceptors_;
  std::mutex mu_;
  std::vector<std::weak_ptr<Connection>> live_;  // guarded by mu_
  bool stopping_ = false;                        // guarded by mu_
  // Connections of trusted proxies still waiting for their PROXY header:
  // at most security.max_connections of them.
  std::atomic<int> waiting_headers_{0};
};

}  // namespace a3::net
