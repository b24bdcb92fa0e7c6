// The IMAP listeners (imap with STARTTLS, imaps with implicit TLS): Asio
// coroutines, one per connection, each feeding a Session (session.h). The
// session's work runs on a small pool (it may wait for the log); a change
// applied by the projector wakes the sessions that IDLE on that mailbox.
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

namespace a3::imap {

class Server {
 public:
  // `tls` may be null (then neither STARTTLS nor imaps). IDLE wake-ups
  // come from store.subscribe().
  Server(boost::asio::io_context& io, const config::Config& config, projections::Store& store,
         net::TlsContexts* tls, net::AuthThrottle& throttle, net::Guard& guard);
  ~Server();

  // SIGHUP: limits, access lists and the TLS policy for new connections
  // (connections already open keep theirs).
  void reload(const config::Config& config);
  void stop();
  // Closes every connection at once (a graceful stop that took too long).
  void abort();
  // Binds one listener (imap or imaps); throws std::runtime_error naming
  // the address if it cannot.
  void listen(const config::Listener& listener);

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace a3::imap
