// The POP3 listeners (pop3 with STLS, pop3s with implicit TLS): one
// coroutine per connection feeding a Session (session.h), whose work runs
// on a small pool (QUIT waits for the log and the projector).
#pragma once

#include <memory>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>

#include "common/config.h"
#include "frontends/net/auth.h"
#include "frontends/net/guard.h"
#include "frontends/net/listener.h"
#include "frontends/net/tls.h"
#include "projections/store.h"

namespace a3::pop3 {

class Server {
 public:
  Server(boost::asio::io_context& io, const config::Config& config, projections::Store& store,
         net::TlsContexts* tls, net::AuthThrottle& throttle, net::Guard& guard);
  ~Server();

  // SIGHUP: limits, access lists and the TLS policy for new connections
  // (connections already open keep theirs).
  void reload(const config::Config& config);
  void stop();
  // Closes every connection at once (a graceful stop that took too long).
  void abort();
  // Binds one listener (pop3 or pop3s); throws std::runtime_error naming
  // the address if it cannot.
  void listen(const config::Listener& listener);

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace a3::pop3
