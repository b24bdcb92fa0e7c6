// The server's TLS context from the [tls] section (certificate chain, key,
// protocol versions, ciphers), shared by every listener, and replaced as a
// whole when SIGHUP reloads the configuration.
#pragma once

#include <atomic>
#include <memory>

#include <boost/asio/ssl/context.hpp>

#include "common/config.h"

namespace a3::net {

// Throws std::runtime_error naming the file that could not be used.
std::unique_ptr<boost::asio::ssl::context> make_tls_context(const config::Tls& tls);

// The context new connections use. A connection takes current() when it
// starts and keeps it to its end, so a reload never disturbs a handshake.
class TlsContexts {
 public:
  explicit TlsContexts(std::shared_ptr<boost::asio::ssl::context> ctx) : ctx_(std::move(ctx)) {}
  std::shared_ptr<boost::asio::ssl::context> current() const { return std::atomic_load(&ctx_); }
  void replace(std::shared_ptr<boost::asio::ssl::context> ctx) {
    std::atomic_store(&ctx_, std::move(ctx));
  }

 private:
  std::shared_ptr<boost::asio::ssl::context> ctx_;
};

// The certificate's notAfter (seconds since the epoch) of a context, or 0.
double certificate_expiry(boost::asio::ssl::context& ctx);

}  // namespace a3::net
