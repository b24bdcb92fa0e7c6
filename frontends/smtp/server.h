// The SMTP listeners: Boost.Asio with C++20 coroutines, one coroutine per
// connection, plaintext with STARTTLS or implicit TLS. Each connection feeds
// a Session (session.h); accepted messages go to the store (delivery.h)
// and are acknowledged only once durable, with no thread waiting meanwhile.
#pragma once

#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>

#include "common/config.h"
#include "frontends/net/auth.h"
#include "frontends/net/guard.h"
#include "frontends/net/listener.h"
#include "frontends/net/tls.h"
#include "projections/store.h"

namespace a3::smtp {

class Server {
 public:
  // `tls` may be null when no certificate is configured (no STARTTLS).
  Server(boost::asio::io_context& io, const config::Config& config, projections::Store& store,
         net::TlsContexts* tls, net::AuthThrottle& throttle, net::Guard& guard);
  ~Server();

  // Closes listeners and connections; the io_context then runs out of work.
  // SIGHUP: limits, access lists and the TLS policy for new connections
  // (connections already open keep theirs).
  void reload(const config::Config& config);
  void stop();
  // Closes every connection at once (a graceful stop that took too long).
  void abort();

  // Binds one listener (smtp, submission or submissions); throws
  // std::runtime_error naming the address if it cannot.
  void listen(const config::Listener& listener);

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace a3::smtp
