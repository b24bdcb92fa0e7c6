#include "monitoring/http_server.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "common/metrics.h"
#include "common/network.h"

namespace a3::monitoring {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

// Bounds: a request is a GET line and a few headers; a client gets a few
// requests per connection and 10 s for each.
constexpr std::size_t kMaxRequestHeader = 8 * 1024;
constexpr int kMaxRequestsPerConnection = 100;
constexpr auto kRequestTimeout = 10s;
constexpr std::size_t kMaxConnections = 64;

}  // namespace

struct HttpServer::State {
  State(asio::io_context& i, const config::Config& c, Readiness r)
      : io(i), config(c), readiness(std::move(r)), acceptor(i) {}

  asio::io_context& io;
  const config::Config config;
  Readiness readiness;
  tcp::acceptor acceptor;
  std::atomic<std::size_t> connections{0};
  std::mutex mu;
  std::vector<std::weak_ptr<beast::tcp_stream>> live;  // guarded by mu
  bool stopping = false;                               // guarded by mu

  http::response<http::string_body> answer(const http::request<http::empty_body>& req) {
    http::response<http::string_body> res;
    res.version(req.version());
    res.keep_alive(req.keep_alive());
    res.set(http::field::server, "a3mailer");
    const auto& sec = config.security;
    if (sec.enable_security_headers) {
      res.set("X-Content-Type-Options", "nosniff");
      res.set("X-Frame-Options", "DENY");
      res.set(http::field::cache_control, "no-store");
      if (sec.enable_csp) res.set("Content-Security-Policy", sec.csp_policy);
    }
    const std::string_view target(req.target().data(), req.target().size());
    const std::string_view path = target.substr(0, target.find('?'));
    auto text = [&](http::status status, std::string body, std::string_view type) {
      res.result(status);
      res.set(http::field::content_type, type);
      res.body() = std::move(body);
    };
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      res.set(http::field::allow, "GET, HEAD");
      text(http::status::method_not_allowed, "only GET and HEAD\n", "text/plain");
    } else if (path == "/metrics") {
      text(http::status::ok, metrics::serialize(), "text/plain; version=0.0.4; charset=utf-8");
    } else if (path == "/healthz/live" || path == "/healthz") {
      // The I/O threads answer: the process is alive.
      text(http::status::ok, "{\"live\":true}\n", "application/json");
    } else if (path == "/healthz/ready") {
      const Verdict v = readiness();
      text(v.ready ? http::status::ok : http::status::service_unavailable, v.json + "\n",
           "application/json");
    } else {
      text(http::status::not_found, "not found: try /metrics, /healthz/live, /healthz/ready\n",
           "text/plain");
    }
    res.prepare_payload();
    if (req.method() == http::verb::head) res.body().clear();
    return res;
  }
};

namespace {

// Both coroutines hold the state: they may outlive the HttpServer.
awaitable<void> serve(std::shared_ptr<HttpServer::State> st,
                      std::shared_ptr<beast::tcp_stream> stream) {
  beast::flat_buffer buffer(kMaxRequestHeader);
  for (int n = 0; n < kMaxRequestsPerConnection; ++n) {
    http::request_parser<http::empty_body> parser;
    parser.header_limit(kMaxRequestHeader);
    stream->expires_after(kRequestTimeout);
    boost::system::error_code ec;
    co_await http::async_read(*stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
    if (ec == http::error::end_of_stream) break;
    if (ec) {
      if (ec != beast::error::timeout && ec != asio::error::operation_aborted &&
          ec != asio::error::eof) {
        // A malformed or oversized request: say so, then close.
        http::response<http::string_body> bad{http::status::bad_request, 11};
        bad.set(http::field::content_type, "text/plain");
        bad.body() = "bad request: " + ec.message() + "\n";
        bad.keep_alive(false);
        bad.prepare_payload();
        co_await http::async_write(*stream, bad, asio::redirect_error(use_awaitable, ec));
      }
      break;
    }
    auto res = st->answer(parser.get());
    // The last request a connection may make says so.
    if (n + 1 == kMaxRequestsPerConnection) res.keep_alive(false);
    const bool keep = res.keep_alive();
    stream->expires_after(kRequestTimeout);  // the answer gets its own time
    co_await http::async_write(*stream, res, asio::redirect_error(use_awaitable, ec));
    if (ec || !keep) break;
  }
  boost::system::error_code ignored;
  stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
}

awaitable<void> accept_loop(std::shared_ptr<HttpServer::State> st) {
  auto& acceptor = st->acceptor;
  for (;;) {
    boost::system::error_code ec;
    // Each connection on a strand of its own: Beast's stream (its timer and
    // its reads and writes) must never run on two threads at once.
    tcp::socket socket = co_await acceptor.async_accept(asio::make_strand(st->io),
                                                        asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    if (ec) {
      asio::steady_timer backoff(st->io, 100ms);
      co_await backoff.async_wait(asio::redirect_error(use_awaitable, ec));
      continue;
    }
    if (st->connections.load() >= kMaxConnections) {
      static constexpr std::string_view kBusy =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      asio::write(socket, asio::buffer(kBusy), ec);
      socket.close(ec);
      continue;
    }
    auto stream = std::make_shared<beast::tcp_stream>(std::move(socket));
    {
      std::lock_guard lock(st->mu);
      if (st->stopping) co_return;
      std::erase_if(st->live, [](const auto& w) { return w.expired(); });
      st->live.push_back(stream);
    }
    ++st->connections;
    asio::co_spawn(stream->get_executor(), serve(st, stream),
                   [st](std::exception_ptr) { --st->connections; });
  }
}

}  // namespace

HttpServer::HttpServer(asio::io_context& io, const config::Config& config, Readiness readiness)
    : state_(std::make_shared<State>(io, config, std::move(readiness))) {}

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::listen() {
  const std::string& bind = state_->config.monitoring.bind;
  try {
    const auto ep = parse_endpoint(bind);
    state_->acceptor.open(ep.protocol());
    state_->acceptor.set_option(tcp::acceptor::reuse_address(true));
    state_->acceptor.bind(ep);
    state_->acceptor.listen();
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("monitoring listener {}: {}", bind, e.what()));
  }
  asio::co_spawn(state_->io, accept_loop(state_), asio::detached);
  spdlog::info("monitoring: listening on {} (/metrics, /healthz/live, /healthz/ready)", bind);
}

void HttpServer::stop() {
  std::vector<std::weak_ptr<beast::tcp_stream>> live;
  {
    std::lock_guard lock(state_->mu);
    if (state_->stopping) return;
    state_->stopping = true;
    live = state_->live;
  }
  auto st = state_;
  asio::post(st->io, [st] {
    boost::system::error_code ec;
    st->acceptor.close(ec);
  });
  // Each stream is closed on its own strand.
  for (auto& w : live) {
    if (auto s = w.lock()) {
      asio::post(s->get_executor(), [s] {
        boost::system::error_code ec;
        s->socket().close(ec);
      });
    }
  }
}

}  // namespace a3::monitoring
