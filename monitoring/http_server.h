// The monitoring listener (Boost.Beast): GET /metrics (Prometheus's text
// format), /healthz/live and /healthz/ready. It answers from what is in
// memory (the registry, the sampler's last verdict), so a scrape never
// waits for the store, the log or PostgreSQL.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "common/config.h"

namespace a3::monitoring {

// The readiness verdict: ready or not, and a JSON object saying why.
struct Verdict {
  bool ready = false;
  std::string json;
};

class HttpServer {
 public:
  using Readiness = std::function<Verdict()>;

  HttpServer(boost::asio::io_context& io, const config::Config& config, Readiness readiness);
  ~HttpServer();

  // Binds [monitoring] bind and serves; throws std::runtime_error naming the
  // address.
  void listen();
  // Closes the listener and the connections.
  void stop();

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace a3::monitoring
